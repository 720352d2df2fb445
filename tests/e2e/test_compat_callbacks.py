"""E2E: Judge0's callback_url. Refused to loopback and private addresses by default; with
CODEEXEC_ALLOW_PRIVATE_CALLBACKS=1 the result is PUT to a local receiver, retried after a
failure, and a callback pending when the server stops is delivered after it restarts."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e
ALLOW = {"CODEEXEC_ALLOW_PRIVATE_CALLBACKS": "1"}


class Receiver:
    """A local HTTP server recording PUTs; answers 500 to the first `fail_first` of them."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                failing = receiver.attempts <= fail_first
                self.send_response(500 if failing else 200)
                self.end_headers()
                if not failing:
                    receiver.bodies.append(json.loads(data))
                    receiver.arrived.set()

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/judge0-result"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(fail_first=1)
    yield found
    found.close()


def submit(server: Server, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/judge0/submissions",
        json=body,
        headers={"X-Auth-Token": server.alice_key},
        timeout=30,
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "ftp://example.com/x",
    ],
)
def test_callbacks_to_private_addresses_are_refused_by_default(
    fake_server: Server, url: str
) -> None:
    refused = submit(fake_server, {"language_id": 71, "source_code": "out x", "callback_url": url})
    assert refused.status_code == 422
    assert list(refused.json()) == ["callback_url"]


def test_an_allowed_callback_is_put_and_retried(tmp_path: Path, receiver: Receiver) -> None:
    server = start_server("fake", tmp_path, extra_env=ALLOW)
    try:
        body = {"language_id": 71, "source_code": "out called back", "callback_url": receiver.url}
        made = submit(server, body)
        assert made.status_code == 201
        assert receiver.arrived.wait(30), "no callback arrived"
        assert receiver.attempts == 2  # the first answered 500, the second was taken
        (result,) = receiver.bodies
        assert result["token"] == made.json()["token"]
        assert result["status"] == {"id": 3, "description": "Accepted"}
        assert base64.b64decode(result["stdout"]) == b"called back\n"
        assert set(result) == {
            "token",
            "time",
            "memory",
            "stdout",
            "stderr",
            "compile_output",
            "message",
            "status",
        }
    finally:
        stop_server(server)


def test_a_pending_callback_survives_a_restart(tmp_path: Path) -> None:
    receiver = Receiver()
    server = start_server("fake", tmp_path, extra_env=ALLOW)
    try:
        # Runs until stopped: the server stops first, and the run is lost with it.
        body = {"language_id": 71, "source_code": "out start\nhang", "callback_url": receiver.url}
        token = submit(server, body).json()["token"]
        stop_server(server)
        assert not receiver.arrived.is_set()
        server = start_server("fake", tmp_path, extra_env=ALLOW)  # new keys, same users
        assert receiver.arrived.wait(60), "the pending callback was not delivered"
        (result,) = receiver.bodies
        assert result["token"] == token and result["status"]["id"] == 13
    finally:
        stop_server(server)
        receiver.close()
