"""E2E: the admin endpoints the dashboard draws from (queue history, execution counts) and the
page itself, against a real uvicorn process sampling its queue every 0.2 s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e
HISTORY = "/api/v1/admin/queue/history"
COUNTS = "/api/v1/admin/execution-counts"


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"CODEEXEC_QUEUE_SAMPLE_S": "0.2", "CODEEXEC_QUEUE_HISTORY_S": "2"}
    running = start_server("fake", tmp_path_factory.mktemp("data-dashboard"), env)
    yield running
    stop_server(running)


def eventually(probe: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


@pytest.mark.parametrize("path", [HISTORY, COUNTS])
def test_dashboard_endpoints_are_for_admins_only(sampled: Server, path: str) -> None:
    with sampled.client(None) as anonymous, sampled.client(sampled.alice_key) as alice:
        assert anonymous.get(path).status_code == 401
        refused = alice.get(path)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    with sampled.client("cx_not_a_key") as stranger:
        assert stranger.get(path).status_code == 401


def test_queue_history_is_a_bounded_ring_that_sees_running_work(sampled: Server) -> None:
    with sampled.client(sampled.admin_key) as admin, sampled.client(sampled.bob_key) as bob:
        slow = bob.post("/api/v1/executions", json={"language": "fake", "source": "out s\nhang"})
        assert slow.status_code == 202

        def running_seen() -> dict[str, Any] | None:
            history: dict[str, Any] = admin.get(HISTORY).json()
            return history if any(s["running"] >= 1 for s in history["samples"]) else None

        history = eventually(running_seen)
        assert history, "no sample saw the hanging run"
        assert history["source"] == "coordinator"  # `serve`: the coordinator runs here
        assert (history["interval_s"], history["window_s"], history["capacity"]) == (0.2, 2, 10)
        assert history["max_running"] >= 1 and ":" in history["process"]
        assert "worker" in history["samples"][-1]["lag"]
        # The window holds 2 s of samples: the ring never grows past its capacity.
        time.sleep(2.5)
        samples = admin.get(HISTORY).json()["samples"]
        assert len(samples) == 10
        times = [s["time"] for s in samples]
        assert times == sorted(times)

        later = admin.get(HISTORY, params={"since": times[-3]}).json()["samples"]
        assert later and all(s["time"] > times[-3] for s in later)
        assert bob.post(f"/api/v1/executions/{slow.json()['id']}/cancel").status_code == 202


@pytest.mark.parametrize(
    ("since", "message"),
    [("yesterday", "ISO 8601"), ("0.5", "ISO 8601"), ("2026-12-01T00:00:00", "timezone")],
)
def test_queue_history_names_a_bad_since(sampled: Server, since: str, message: str) -> None:
    with sampled.client(sampled.admin_key) as admin:
        response = admin.get(HISTORY, params={"since": since})
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "since" and message in error["message"]


def test_execution_counts_split_finished_runs_by_status(sampled: Server) -> None:
    key = sampled.new_user_key("counted")
    with sampled.client(key) as user, sampled.client(sampled.admin_key) as admin:
        before = admin.get(COUNTS).json()
        for source in ("out ok", "out partial\nexit 3"):
            done = user.post(
                "/api/v1/executions",
                params={"wait": "true"},
                json={"language": "fake", "source": source},
            )
            assert done.status_code in (200, 201)

        def both_counted() -> dict[str, Any] | None:
            counts: dict[str, Any] = admin.get(COUNTS).json()
            grew = counts["total"] >= before["total"] + 2
            return counts if grew and counts["by_status"].get("runtime_error") else None

        counts = eventually(both_counted)
    assert counts, "the finished runs were not counted"
    assert counts["by_status"]["succeeded"] >= before["by_status"].get("succeeded", 0) + 1
    assert counts["by_state"]["completed"] >= 2
    assert sum(counts["by_status"].values()) == counts["total"] == sum(counts["by_state"].values())


def test_openapi_documents_the_dashboard_endpoints(sampled: Server) -> None:
    with sampled.client(None) as client:
        schema = client.get("/openapi.json").json()
    history = schema["paths"][HISTORY]["get"]
    assert history["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/QueueHistoryOut"
    }
    assert {"401", "403", "422"} <= set(history["responses"])
    assert {"401", "403"} <= set(schema["paths"][COUNTS]["get"]["responses"])
    sample = schema["components"]["schemas"]["QueueSampleOut"]["properties"]
    assert {"time", "queued", "running", "lag"} <= set(sample)
    assert "by_status" in schema["components"]["schemas"]["ExecutionCountsOut"]["properties"]


def test_the_dashboard_page_and_its_modules_are_served_by_the_server(sampled: Server) -> None:
    with sampled.client(None) as client:
        page = client.get("/dashboard")
        assert page.status_code == 200 and 'data-testid="dashboard"' in page.text
        assert 'href="/"' in page.text  # back to the console
        for module in (
            "dashboard.js",
            "dashboard_charts.js",
            "dashboard_forms.js",
            "dashboard_lists.js",
            "dashboard.css",
        ):
            asset = client.get(f"/static/{module}")
            assert asset.status_code == 200, module
            assert "http://" not in asset.text.replace("http://www.w3.org/2000/svg", "")
            assert "https://" not in asset.text
