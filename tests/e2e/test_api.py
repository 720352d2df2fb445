"""E2E: the HTTP API against a real uvicorn process, on the fake and the real local sandbox."""

from __future__ import annotations

import base64
import time
import uuid
from typing import cast

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.e2e.sse import read_events

pytestmark = pytest.mark.e2e
TERMINAL = {
    "ExecutionCompleted",
    "ExecutionFailed",
    "ExecutionCancelled",
    "ExecutionRejected",
    "ExecutionTimedOut",
}


def submit(server: Server, key: str, source: str, **extra: object) -> dict[str, object]:
    with server.client(key) as client:
        params = {"wait": "true", "timeout": "30"} if extra.pop("wait", False) else {}
        headers = cast(dict[str, str], extra.pop("headers", {}))
        body = {"language": server.programs.language, "source": source, **extra}
        response = client.post("/api/v1/executions", json=body, params=params, headers=headers)
        assert response.status_code in (200, 202), response.text
        data: dict[str, object] = response.json()
        return data


def test_wait_mode_returns_the_finished_result(server: Server) -> None:
    result = submit(server, server.alice_key, server.programs.hello, wait=True)
    assert result["status"] == "succeeded", result
    assert result["stdout"] == "hello\n"
    assert result["exit_code"] == 0
    assert result["terminal"] is True


def test_get_with_wait_answers_once_the_run_has_ended(server: Server) -> None:
    started = submit(server, server.alice_key, server.programs.chunks)
    with server.client(server.alice_key) as client:
        url = f"/api/v1/executions/{started['id']}"
        at_once = client.get(url).json()
        ended = client.get(url, params={"wait": "true", "timeout": "20"}).json()
    assert at_once["terminal"] is False  # still running when first asked
    assert (ended["terminal"], ended["status"], ended["stdout"]) == (True, "succeeded", "a\nb\n")


def test_submit_answers_202_with_id_and_links(server: Server) -> None:
    with server.client(server.alice_key) as client:
        response = client.post(
            "/api/v1/executions",
            json={"language": server.programs.language, "source": server.programs.hello},
        )
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/api/v1/executions/{body['id']}"
    assert body["links"]["events"].endswith(f"{body['id']}/events")


def test_non_zero_exit_is_a_runtime_error_with_its_code(server: Server) -> None:
    result = submit(server, server.alice_key, server.programs.exit3, wait=True)
    assert (result["status"], result["exit_code"], result["stdout"]) == (
        "runtime_error",
        3,
        "partial\n",
    )


def test_event_stream_carries_live_output_and_closes_after_the_terminal_event(
    server: Server,
) -> None:
    created = submit(server, server.alice_key, server.programs.chunks)
    with server.client(server.alice_key) as client:
        events = read_events(client, str(created["id"]))
    names = [e.event for e in events]
    assert names[0] == "ExecutionRequested"
    assert names[-1] in TERMINAL
    assert [e.id for e in events] == sorted(e.id for e in events)
    output = b"".join(
        base64.b64decode(e.data["data"]) for e in events if e.event == "ExecutionOutput"
    )
    assert output == b"a\nb\n"


def test_event_stream_resumes_after_last_event_id(server: Server) -> None:
    created = submit(server, server.alice_key, server.programs.hello, wait=True)
    with server.client(server.alice_key) as client:
        everything = read_events(client, str(created["id"]))
        resumed = read_events(client, str(created["id"]), last_event_id=2)
        past_the_end = read_events(client, str(created["id"]), last_event_id=everything[-1].id)
    assert [e.id for e in resumed] == [e.id for e in everything if e.id > 2]
    assert past_the_end == []  # closes at once instead of hanging


def wait_until_running(client: httpx.Client, execution_id: str) -> None:
    deadline = time.monotonic() + 20
    while client.get(f"/api/v1/executions/{execution_id}").json()["status"] != "running":
        assert time.monotonic() < deadline, "never started"
        time.sleep(0.05)


def test_live_output_arrives_while_the_program_still_runs(server: Server) -> None:
    created = submit(server, server.alice_key, server.programs.slow)
    execution_id = str(created["id"])
    with server.client(server.alice_key) as client:
        try:
            before = read_events(
                client, execution_id, until=lambda e: e.event == "ExecutionOutput", within_s=5
            )
            assert base64.b64decode(before[-1].data["data"]) == b"start\n"
        finally:
            client.post(f"/api/v1/executions/{execution_id}/cancel")


def test_cancel_stops_a_running_program(server: Server) -> None:
    created = submit(server, server.alice_key, server.programs.slow)
    execution_id = str(created["id"])
    with server.client(server.alice_key) as client:
        wait_until_running(client, execution_id)
        time.sleep(1.0)  # let it print
        started = time.monotonic()
        response = client.post(f"/api/v1/executions/{execution_id}/cancel")
        assert response.status_code == 202
        events = read_events(client, execution_id, within_s=10)
        assert events[-1].event == "ExecutionCancelled"
        assert time.monotonic() - started < 10
        final = client.get(f"/api/v1/executions/{execution_id}").json()
    assert final["status"] == "cancelled"
    assert final["stdout"] == "start\n"


def test_idempotency_key_returns_the_original_execution(server: Server) -> None:
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = submit(server, server.alice_key, server.programs.hello, headers=key)
    again = submit(server, server.alice_key, server.programs.hello, headers=key)
    other_user = submit(server, server.bob_key, server.programs.hello, headers=key)
    assert again["id"] == first["id"]
    assert other_user["id"] != first["id"]


def test_listing_pages_with_next_cursor_newest_first(server: Server) -> None:
    key = server.new_user_key(f"pager-{uuid.uuid4().hex[:8]}")
    ids = [submit(server, key, server.programs.hello)["id"] for _ in range(5)]
    seen: list[str] = []
    with server.client(key) as client:
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/executions", params=params).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        only_fake = client.get("/api/v1/executions", params={"language": "nope"}).json()
    assert seen == list(reversed(ids))
    assert only_fake["items"] == []


def test_admins_list_any_users_executions_and_users_cannot(server: Server) -> None:
    user = f"listed-{uuid.uuid4().hex[:8]}"
    key = server.new_user_key(user)
    created = submit(server, key, server.programs.hello)["id"]
    with server.client(server.admin_key) as admin:
        theirs = admin.get("/api/v1/executions", params={"user": user}).json()["items"]
        everyone = admin.get("/api/v1/executions", params={"user": "*", "limit": 100}).json()
    assert [item["id"] for item in theirs] == [created]
    assert created in {item["id"] for item in everyone["items"]}
    with server.client(server.bob_key) as bob:
        refused = bob.get("/api/v1/executions", params={"user": user})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")


def test_another_users_execution_answers_404(server: Server) -> None:
    created = submit(server, server.alice_key, server.programs.hello)
    execution_id = created["id"]
    with server.client(server.bob_key) as bob:
        assert bob.get(f"/api/v1/executions/{execution_id}").status_code == 404
        assert bob.post(f"/api/v1/executions/{execution_id}/cancel").status_code == 404
        assert bob.get(f"/api/v1/executions/{execution_id}/events").status_code == 404
        listed = bob.get("/api/v1/executions", params={"limit": 100}).json()["items"]
    assert execution_id not in {item["id"] for item in listed}


def test_output_that_is_not_utf8_comes_back_as_exact_base64(server: Server) -> None:
    if server.kind != "local":
        pytest.skip("needs a real interpreter to write arbitrary bytes")
    source = (
        'import sys\nsys.stdout.buffer.write(b"\\xff\\xfe ok")\n'
        'print("h\\u00e9llo \\u2713", file=sys.stderr)\n'
    )
    result = submit(server, server.alice_key, source, wait=True)
    assert result["stdout_encoding"] == "base64"
    assert base64.b64decode(str(result["stdout"])) == b"\xff\xfe ok"
    assert (result["stderr"], result["stderr_encoding"]) == ("h\u00e9llo \u2713\n", "utf-8")
