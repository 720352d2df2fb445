"""E2E: requests that stay open (waiting for a result, event streams) are bounded per user,
freed when their client leaves, and one user's load never refuses another user."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e
SUBMIT = "/api/v1/executions"


def gauge(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    values = [line.split()[-1] for line in text.splitlines() if line.split(" ")[0] == name]
    assert values, f"no metric {name}"
    return float(values[0])


def eventually(check: Callable[[], bool], what: str, within_s: float = 30.0) -> None:
    """Polls state (never asserts a duration: the bound only stops a broken run hanging)."""
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def async_client(server: Server, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=90,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=0),
    )


@pytest.fixture
def bounded(tmp_path: Path) -> Iterator[Server]:
    server = start_server(
        "fake",
        tmp_path,
        {
            "CODEEXEC_MAX_INFLIGHT": "8",
            "CODEEXEC_MAX_WAITERS_PER_USER": "6",
            "CODEEXEC_MAX_WAITERS_PER_KEY": "3",
            "CODEEXEC_MAX_STREAMS_PER_USER": "2",
            "CODEEXEC_STREAM_WRITE_TIMEOUT_S": "1",
        },
    )
    yield server
    stop_server(server)


async def test_idempotency_key_waiters_cannot_lock_other_users_out(bounded: Server) -> None:
    server = bounded
    hang = {"language": "fake", "source": "hang"}
    key = {"Idempotency-Key": "K"}
    async with async_client(server, server.alice_key) as attacker:
        first = await attacker.post(SUBMIT, json=hang, headers=key)
        assert first.status_code == 202
        waits = [
            asyncio.create_task(
                attacker.post(
                    SUBMIT, json=hang, headers=key, params={"wait": "true", "timeout": 60}
                )
            )
            for _ in range(40)
        ]
        while sum(w.done() for w in waits) < 37:  # the three within the bound keep waiting
            await asyncio.wait([w for w in waits if not w.done()], return_when="FIRST_COMPLETED")
        refused = [w.result() for w in waits if w.done()]
        assert {r.status_code for r in refused} == {429}
        assert all(r.headers["retry-after"] == "1" for r in refused)
        assert all(r.headers["content-type"] == "application/problem+json" for r in refused)
        assert refused[0].json()["limit"] == "max_waiters_per_key"
        assert (
            "at most 3 per Idempotency-Key (CODEEXEC_MAX_WAITERS_PER_KEY)"
            in (refused[0].json()["detail"])
        )
        assert await asyncio.to_thread(gauge, server, "codeexec_waiting_submissions") == 3

        with server.client(server.bob_key) as bob:
            answer = bob.post(SUBMIT, json={"language": "fake", "source": "out hi"})
            waited = bob.post(
                SUBMIT, json={"language": "fake", "source": "out hi"}, params={"wait": "true"}
            )
        assert answer.status_code == 202, answer.text
        assert (waited.status_code, waited.json()["stdout"]) == (200, "hi\n")

        for wait in waits:  # the attacker goes away: its sockets close
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    eventually(
        lambda: gauge(server, "codeexec_waiting_submissions") == 0,
        "the waiters of closed connections were freed",
    )
    with server.client(server.alice_key) as alice:
        alice.post(f"{SUBMIT}/{first.json()['id']}/cancel")


async def test_a_user_over_the_waiter_bound_gets_429_and_nothing_is_recorded(
    bounded: Server,
) -> None:
    server = bounded
    user = server.new_user_key("carol")
    hang = {"language": "fake", "source": "hang"}
    async with async_client(server, user) as carol:
        waits = [
            asyncio.create_task(carol.post(SUBMIT, json=hang, params={"wait": "true"}))
            for _ in range(6)
        ]
        while await asyncio.to_thread(gauge, server, "codeexec_waiting_submissions") < 6:
            assert not any(w.done() for w in waits), [w.result().text for w in waits if w.done()]
            await asyncio.sleep(0.05)
        over = await carol.post(SUBMIT, json=hang, params={"wait": "true", "timeout": 5})
        listed = (await carol.get(SUBMIT, params={"limit": 100})).json()["items"]
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        for execution in listed:
            await carol.post(f"{SUBMIT}/{execution['id']}/cancel")
    assert over.status_code == 429, over.text
    assert over.headers["retry-after"] == "1"
    assert "at most 6 per user (CODEEXEC_MAX_WAITERS_PER_USER)" in over.json()["detail"]
    assert over.json()["limit"] == "max_waiters_per_user"
    assert len(listed) == 6  # the refused one was never recorded


def test_a_waiting_submission_holds_no_accept_slot(tmp_path: Path) -> None:
    # Accepting is bounded for all users together; waiting is not part of it.
    server = start_server("fake", tmp_path, {"CODEEXEC_MAX_INFLIGHT": "1"})
    try:
        with ThreadPoolExecutor(1) as pool, server.client(server.alice_key) as client:
            waiting = pool.submit(
                client.post,
                SUBMIT,
                params={"wait": "true", "timeout": "3"},
                json={"language": "fake", "source": "hang"},
            )
            eventually(lambda: gauge(server, "codeexec_waiting_submissions") == 1, "waiting")
            with server.client(server.bob_key) as bob:
                response = bob.post(SUBMIT, json={"language": "fake", "source": "out x"})
            assert response.status_code == 202, response.text
            assert waiting.result().status_code == 202  # the wait is bounded too
            client.post(f"{SUBMIT}/{waiting.result().json()['id']}/cancel")
    finally:
        stop_server(server)


def test_event_streams_are_capped_per_user_and_freed_when_the_client_leaves(
    bounded: Server,
) -> None:
    server = bounded
    with server.client(server.alice_key) as alice, server.client(server.bob_key) as bob:
        running = alice.post(SUBMIT, json={"language": "fake", "source": "out a\nhang"}).json()
        bobs = bob.post(SUBMIT, json={"language": "fake", "source": "out b"}).json()
        events = f"{SUBMIT}/{running['id']}/events"
        with alice.stream("GET", events) as one, alice.stream("GET", events) as two:
            assert (one.status_code, two.status_code) == (200, 200)
            eventually(lambda: gauge(server, "codeexec_event_streams") == 2, "two streams")
            third = alice.get(events)
            assert third.status_code == 429
            assert third.headers["retry-after"] == "1"
            assert "at most 2 per user (CODEEXEC_MAX_STREAMS_PER_USER)" in third.json()["detail"]
            assert third.json()["limit"] == "max_streams_per_user"
            assert bob.get(f"{SUBMIT}/{bobs['id']}/events").status_code == 200
        # Both clients left while the execution still runs: their slots come back.
        eventually(lambda: gauge(server, "codeexec_event_streams") == 0, "slots freed")
        with alice.stream("GET", events) as again:
            assert again.status_code == 200
        alice.post(f"{SUBMIT}/{running['id']}/cancel")


def test_a_client_that_does_not_read_is_dropped_after_the_write_timeout(
    bounded: Server,
) -> None:
    server = bounded
    line = "out " + "x" * 2**20
    with server.client(server.alice_key) as alice:
        done = alice.post(
            SUBMIT,
            params={"wait": "true"},
            json={"language": "fake", "source": "\n".join([line] * 3)},
        ).json()
    assert done["status"] == "succeeded" and len(done["stdout"]) > 3 * 2**20
    sock = open_stream(server, server.alice_key, done["id"])
    try:
        # The stream started (its first bytes wait, unread, in our receive buffer) ...
        eventually(lambda: sock.recv(15, socket.MSG_PEEK) == b"HTTP/1.1 200 OK", "started")
        # ... and, as we never read, the server gives up on it and frees its slot.
        eventually(lambda: gauge(server, "codeexec_event_streams") == 0, "the stream dropped")
        received = bytearray()
        while chunk := sock.recv(2**20):
            received += chunk
    finally:
        sock.close()
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert b"ExecutionCompleted" not in received  # cut, not finished: the client was too slow
    assert not received.endswith(b"0\r\n\r\n")


def open_stream(server: Server, key: str, execution_id: str) -> socket.socket:
    """A connection asking for the event stream with a tiny receive window, read only later."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = server.url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    sock.settimeout(30)
    request = (
        f"GET {SUBMIT}/{execution_id}/events HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock
