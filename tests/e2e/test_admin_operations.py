"""E2E: the operators' API and CLI (replay sessions, dead letters, their metrics and health)
against a real uvicorn process with its own store, so replay counts are exact."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from codeexec_server.cli_replay import Progress

from tests.e2e.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e
REPLAYS = "/api/v1/admin/replays"
LETTERS = "/api/v1/admin/dead-letters"
UNKNOWN = "00000000-0000-0000-0000-00000000abcd"


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server("fake", tmp_path_factory.mktemp("data-ops"))
    yield running
    stop_server(running)


def run_programs(server: Server, user: str, n: int) -> list[str]:
    with server.client(server.new_user_key(user)) as client:
        views = [
            client.post(
                "/api/v1/executions",
                params={"wait": "true"},
                json={"language": "fake", "source": f"out {i}"},
            ).json()
            for i in range(n)
        ]
    assert {v["status"] for v in views} == {"succeeded"}
    return [v["id"] for v in views]


def until(client: httpx.Client, session_id: str, done: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        session: dict[str, Any] = client.get(f"{REPLAYS}/{session_id}").json()
        if done(session) or time.monotonic() > deadline:
            return session
        time.sleep(0.05)


def is_finished(session: dict[str, Any]) -> bool:
    return bool(session["finished"])


def test_a_replay_sends_exactly_what_its_dry_run_counted(ops: Server) -> None:
    run_programs(ops, "replayed", 3)
    filters = {"user_id": "replayed", "event_types": ["ExecutionRequested", "ExecutionCompleted"]}
    with ops.client(ops.admin_key) as admin:
        created = admin.post(REPLAYS, json={"filters": filters, "dry_run": True})
        assert created.status_code == 201
        assert created.headers["location"] == f"{REPLAYS}/{created.json()['id']}"
        dry = until(admin, created.json()["id"], is_finished)
        pinned = {**filters, "until_position": dry["filters"]["until_position"]}
        real = admin.post(REPLAYS, json={"filters": pinned, "batch_size": 2}).json()
        assert (real["target_topic"], real["state"], real["dry_run"]) == (
            "replay_scratch",
            "running",
            False,
        )
        done = until(admin, real["id"], is_finished)
        listed = [s["id"] for s in admin.get(REPLAYS, params={"state": "completed"}).json()]
        metrics = admin.get("/metrics").text
    assert (dry["state"], dry["matched"], dry["sent"], dry["percent"]) == ("completed", 6, 0, 100)
    assert dry["position"] == dry["total"] == dry["filters"]["until_position"]
    assert (done["state"], done["sent"], done["failed"]) == ("completed", dry["matched"], 0)
    assert done["position"] == done["total"] == dry["total"]
    assert done["matched"] + done["skipped"] == done["total"]
    assert listed[:2] == [real["id"], dry["id"]]  # newest first
    replayed = re.search(r"^codeexec_events_replayed_total (\S+)$", metrics, re.M)
    assert replayed is not None and float(replayed.group(1)) >= 6
    timed = r'^codeexec_execution_seconds_count\{status="succeeded"\} (\S+)$'
    succeeded = re.search(timed, metrics, re.M)  # submission to end, of the runs above
    assert succeeded is not None and float(succeeded.group(1)) >= 3


def test_a_replay_pauses_resumes_and_cancels(ops: Server) -> None:
    run_programs(ops, "paced", 4)
    body = {"filters": {"user_id": "paced"}, "batch_size": 1, "rate_per_s": 10}
    with ops.client(ops.admin_key) as admin:
        session = admin.post(REPLAYS, json=body).json()
        url = f"{REPLAYS}/{session['id']}"
        paused = admin.post(f"{url}/pause")
        assert (paused.status_code, paused.json()["state"]) == (200, "paused")
        assert admin.post(f"{url}/pause").status_code == 409
        time.sleep(0.5)  # a batch already in flight may still be recorded
        held = admin.get(url).json()["position"]
        time.sleep(0.5)
        assert admin.get(url).json()["position"] == held
        resumed = admin.post(f"{url}/resume")
        assert (resumed.status_code, resumed.json()["state"]) == (200, "running")
        assert admin.post(f"{url}/resume").status_code == 409
        moving = until(admin, session["id"], lambda s: s["position"] > held)
        assert moving["position"] > held and 0 < moving["percent"] < 100
        cancelled = admin.post(f"{url}/cancel")
        assert (cancelled.status_code, cancelled.json()["state"]) == (200, "cancelled")
        for action in ("pause", "resume", "cancel"):
            conflict = admin.post(f"{url}/{action}")
            assert conflict.status_code == 409
            assert conflict.headers["content-type"] == "application/problem+json"
        final = admin.get(url).json()
        running = [s["id"] for s in admin.get(REPLAYS, params={"state": "running"}).json()]
    assert final["finished"] and final["sent"] < final["total"]
    assert session["id"] not in running


ADMIN_ROUTES = [
    ("POST", REPLAYS, {}),
    ("GET", REPLAYS, None),
    ("GET", f"{REPLAYS}/{UNKNOWN}", None),
    ("POST", f"{REPLAYS}/{UNKNOWN}/pause", None),
    ("POST", f"{REPLAYS}/{UNKNOWN}/resume", None),
    ("POST", f"{REPLAYS}/{UNKNOWN}/cancel", None),
    ("GET", LETTERS, None),
    ("GET", f"{LETTERS}/{UNKNOWN}", None),
    ("POST", f"{LETTERS}/{UNKNOWN}/retry", None),
    ("POST", f"{LETTERS}/{UNKNOWN}/discard", {"reason": "x"}),
    ("POST", f"{LETTERS}/{UNKNOWN}/archive", None),
]


def test_operations_routes_are_admin_only(ops: Server) -> None:
    with ops.client(ops.alice_key) as alice, ops.client(None) as nobody:
        for method, path, body in ADMIN_ROUTES:
            refused = alice.request(method, path, json=body)
            assert refused.status_code == 403, (method, path)
            assert refused.headers["content-type"] == "application/problem+json"
            assert nobody.request(method, path, json=body).status_code == 401


def test_unknown_ids_answer_404_even_when_they_name_other_aggregates(ops: Server) -> None:
    execution_id = run_programs(ops, "other", 1)[0]
    with ops.client(ops.admin_key) as admin:
        for method, path, body in ADMIN_ROUTES[2:]:
            if path in (REPLAYS, LETTERS):
                continue
            for some_id in (UNKNOWN, execution_id):
                missing = admin.request(method, path.replace(UNKNOWN, some_id), json=body)
                assert missing.status_code == 404, (method, path)
                assert missing.json()["status"] == 404
        malformed = admin.get(f"{REPLAYS}/not-an-id")
    assert malformed.status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target_topic": "nowhere"}, "target_topic"),
        ({"target_topic": "dead_letters"}, "target_topic"),
        (
            {"filters": {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}},
            "filters.until",
        ),
        ({"filters": {"since": "2026-01-01T00:00:00"}}, "filters.since"),  # no time zone
        ({"filters": {"event_types": ["NoSuchEvent"]}}, "filters.event_types"),
        ({"filters": {"until_position": 10**12}}, "filters.until_position"),
        ({"batch_size": 0}, "batch_size"),
        ({"filters": {"colour": "red"}}, "filters.colour"),
    ],
)
def test_bad_replay_requests_answer_422_naming_the_field(
    ops: Server, body: dict[str, Any], field: str
) -> None:
    with ops.client(ops.admin_key) as admin:
        response = admin.post(REPLAYS, json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_dead_letters_list_empty_and_filters_are_checked(ops: Server) -> None:
    with ops.client(ops.admin_key) as admin:
        everything = admin.get(LETTERS)
        filtered = admin.get(
            LETTERS, params={"state": ["open", "exhausted"], "group": "audit", "limit": 5}
        )
        bad_state = admin.get(LETTERS, params={"state": "lost"})
        bad_cursor = admin.get(LETTERS, params={"cursor": "-1"})
    assert everything.json() == {"items": [], "next_cursor": None}
    assert filtered.json() == {"items": [], "next_cursor": None}
    assert [e["field"] for e in bad_state.json()["errors"]] == ["state.0"]
    assert bad_cursor.status_code == 422


def test_readiness_reports_the_dead_letter_level_and_roles(ops: Server) -> None:
    with ops.client(None) as client:
        ready = client.get("/health/ready")
    body = ready.json()
    assert (ready.status_code, body["status"]) == (200, "ok")
    assert body["checks"]["dead_letters"]["open"] == 0
    assert body["checks"]["dead_letters"]["level"] == "ok"
    assert set(body["checks"]["roles"].values()) == {"running"}
    assert {"dead-letters", "replay", "relay"} <= body["checks"]["roles"].keys()


def test_metrics_expose_the_dead_letter_backlog_and_replay_sessions(ops: Server) -> None:
    with ops.client(None) as client:
        metrics = client.get("/metrics").text
    assert re.search(r"^codeexec_dead_letters_open 0\.0$", metrics, re.M)
    assert re.search(r"^codeexec_dead_letters_level 0\.0$", metrics, re.M)
    for name in (
        "codeexec_dead_letters_oldest_open_seconds",
        'codeexec_replay_sessions{state="running"}',
        'codeexec_replay_sessions{state="completed"}',
        "codeexec_events_replayed_total",
    ):
        assert name in metrics


def cli(server: Server, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CODEEXEC_SERVER": server.url, "CODEEXEC_KEY": key or server.admin_key}
    return subprocess.run(
        [sys.executable, "-m", "codeexec_server.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_cli_dry_run_follow_exits_0_and_prints_the_count(ops: Server) -> None:
    run_programs(ops, "counted", 2)
    done = cli(ops, "replay", "create", "--dry-run", "--follow", "--user", "counted", "--type",
               "ExecutionRequested")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "dry run completed: 2 events matched"
    session_id = done.stdout.splitlines()[0].removeprefix("replay ")
    shown = cli(ops, "replay", "show", session_id)
    assert shown.returncode == 0 and '"matched": 2' in shown.stdout
    assert session_id in cli(ops, "replay", "list").stdout


def test_cli_watch_exits_1_for_a_cancelled_replay(ops: Server) -> None:
    run_programs(ops, "watched", 2)
    created = cli(ops, "replay", "create", "--user", "watched", "--batch", "1", "--rate", "2")
    session_id = created.stdout.strip()
    assert created.returncode == 0 and uuid.UUID(session_id)
    assert cli(ops, "replay", "cancel", session_id).stdout.split() == [session_id, "cancelled"]
    watched = cli(ops, "replay", "watch", session_id)
    assert watched.returncode == 1
    assert watched.stdout.splitlines()[-1].startswith("cancelled: ")
    again = cli(ops, "replay", "cancel", session_id)
    assert again.returncode == 1 and "409" in again.stderr


def test_cli_errors_have_distinct_exit_codes(ops: Server) -> None:
    assert cli(ops, "dlq", "list").returncode == 0
    assert cli(ops, "dlq", "show", UNKNOWN).returncode == 1
    assert cli(ops, "dlq", "retry", UNKNOWN).returncode == 1
    assert cli(ops, "dlq", "list", key=ops.alice_key).returncode == 1  # 403
    assert cli(ops, "replay", "show", "not-an-id").returncode == 2
    assert cli(ops, "replay", "create", "--since", "yesterday").returncode == 2
    bogus = cli(ops, "replay", "create", "--type", "NoSuchEvent")
    assert bogus.returncode == 2 and "NoSuchEvent" in bogus.stderr
    unreachable = cli(ops, "dlq", "list", "--server", "http://127.0.0.1:9")
    assert unreachable.returncode == 69


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_watching_on_a_terminal_redraws_one_progress_bar() -> None:
    out = Terminal()
    progress = Progress(out)
    session = {"state": "running", "position": 1, "total": 4, "matched": 1, "sent": 1}
    session |= {"failed": 0, "percent": 25.0, "dry_run": False, "target_topic": "replay_scratch"}
    progress.update(session)
    progress.update({**session, "position": 4, "percent": 100.0, "state": "completed"})
    progress.finish({**session, "state": "completed"})
    lines = out.getvalue().split("\n")
    assert lines[0].count("\r") == 2 and "[#######" in lines[0] and "100.0%" in lines[0]
    assert lines[1] == "completed: 1 of 1 matched events sent to replay_scratch (0 failed)"
