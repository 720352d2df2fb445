"""E2E: a lock held on the SQLite event store never freezes the server (issue 8, finding 7).

While another connection holds `BEGIN EXCLUSIVE`, the liveness probe still answers and a
submission answers 503 with Retry-After (recording nothing); after the lock is released
submissions work again and everything accepted before finishes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def busy_server(tmp_path: Path) -> Iterator[Server]:
    # A generous bound: the submission is still waiting long after the probe answered.
    running = start_server("fake", tmp_path, {"CODEEXEC_STORE_BUSY_TIMEOUT_S": "5"})
    yield running
    stop_server(running)


def submit(client: httpx.Client, source: str) -> httpx.Response:
    return client.post("/api/v1/executions", json={"language": "fake", "source": source})


def test_a_locked_store_answers_busy_and_loses_nothing(busy_server: Server) -> None:
    client = busy_server.client(busy_server.alice_key)
    accepted = [submit(client, "out x").json()["id"] for _ in range(3)]
    in_flight = submit(client, "out a\nsleep 0.5\nout b").json()["id"]
    lock = sqlite3.connect(busy_server.data_dir / "events.sqlite3", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        with ThreadPoolExecutor(1) as pool:
            refused = pool.submit(submit, busy_server.client(busy_server.alice_key), "out no")
            live = httpx.get(f"{busy_server.url}/health/live", timeout=60)
            assert live.status_code == 200
            assert not refused.done()  # the probe answered while the submission waited
            read = client.get(f"/api/v1/executions/{accepted[0]}")
            assert read.status_code == 200  # reads come from memory, not the store
            response = refused.result()
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        lock.rollback()
        lock.close()
    after = client.post(
        "/api/v1/executions", params={"wait": "true"}, json={"language": "fake", "source": "out y"}
    )
    assert (after.status_code, after.json()["status"]) == (200, "succeeded")
    for execution_id in accepted:
        assert finished(client, execution_id)["status"] == "succeeded"
    view = finished(client, in_flight)
    assert (view["status"], view["stdout"]) == ("succeeded", "a\nb\n")
    items = client.get("/api/v1/executions", params={"limit": 100}).json()["items"]
    assert len(items) == 5  # the refused submission recorded nothing


def finished(client: httpx.Client, execution_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 60  # a guard against hanging, not a speed check
    while True:
        view: dict[str, object] = client.get(f"/api/v1/executions/{execution_id}").json()
        if view["state"] in ("completed", "failed", "timed_out", "cancelled", "rejected"):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.05)
