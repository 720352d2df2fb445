"""E2E: validation, auth, admin, health and metrics of the HTTP API (fake sandbox)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e


def test_limits_above_the_maxima_are_rejected_naming_the_field(fake_server: Server) -> None:
    with fake_server.client(fake_server.alice_key) as client:
        response = client.post(
            "/api/v1/executions",
            json={"language": "fake", "source": "out x", "limits": {"memory_bytes": 2**40}},
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert [e["field"] for e in problem["errors"]] == ["limits.memory_bytes"]


def test_invalid_bodies_are_problems_naming_the_field(fake_server: Server) -> None:
    with fake_server.client(fake_server.alice_key) as client:
        unknown = client.post("/api/v1/executions", json={"language": "cobol", "source": "x"})
        missing = client.post("/api/v1/executions", json={"source": "x"})
        bad_b64 = client.post(
            "/api/v1/executions",
            json={
                "language": "fake",
                "files": [{"name": "m", "content": "@@@", "encoding": "base64"}],
            },
        )
    assert [e["field"] for e in unknown.json()["errors"]] == ["language"]
    assert [e["field"] for e in missing.json()["errors"]] == ["language"]
    assert [e["field"] for e in bad_b64.json()["errors"]] == ["files.0.content"]


def test_base64_files_and_priority_only_for_admins(fake_server: Server) -> None:
    body = {
        "language": "fake",
        "files": [
            {"name": "m", "content": base64.b64encode(b"out hi").decode(), "encoding": "base64"}
        ],
        "priority": 5,
    }
    with fake_server.client(fake_server.alice_key) as alice:
        refused = alice.post("/api/v1/executions", json=body)
    with fake_server.client(fake_server.admin_key) as admin:
        accepted = admin.post("/api/v1/executions", json=body, params={"wait": "true"})
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["priority"]
    assert accepted.status_code == 200
    assert (accepted.json()["stdout"], accepted.json()["priority"]) == ("hi\n", 5)


def test_no_key_and_bad_key_answer_401(fake_server: Server) -> None:
    with fake_server.client(None) as anonymous:
        assert anonymous.get("/api/v1/executions").status_code == 401
    with fake_server.client("cx_not-a-key") as wrong:
        response = wrong.get("/api/v1/languages")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_oversized_bodies_answer_413(fake_server: Server) -> None:
    with fake_server.client(fake_server.alice_key) as client:
        response = client.post(
            "/api/v1/executions", json={"language": "fake", "source": "x" * (5 * 2**20)}
        )
    assert response.status_code == 413
    assert response.json()["status"] == 413


def test_admin_routes_are_admin_only_and_limits_apply(fake_server: Server) -> None:
    with fake_server.client(fake_server.alice_key) as alice:
        assert alice.get("/api/v1/admin/queue").status_code == 403
        assert alice.get("/api/v1/admin/limits").status_code == 403
    with fake_server.client(fake_server.admin_key) as admin:
        queue = admin.get("/api/v1/admin/queue").json()
        limits = admin.get("/api/v1/admin/limits").json()
        assert {"queued", "running", "backlog"} <= queue.keys()
        lowered = {
            **limits,
            "max_resource_limits": {**limits["max_resource_limits"], "wall_time_s": 2.0},
        }
        assert admin.put("/api/v1/admin/limits", json=lowered).status_code == 200
        try:
            with fake_server.client(fake_server.alice_key) as alice:
                response = alice.post(
                    "/api/v1/executions",
                    json={"language": "fake", "source": "out x", "limits": {"wall_time_s": 3}},
                )
            assert [e["field"] for e in response.json()["errors"]] == ["limits.wall_time_s"]
        finally:
            admin.put("/api/v1/admin/limits", json=limits)


def test_a_user_over_their_rate_limit_is_refused_at_once(fake_server: Server) -> None:
    user = "limited"
    key = fake_server.new_user_key(user)
    with fake_server.client(fake_server.admin_key) as admin:
        limits = admin.get("/api/v1/admin/limits").json()
        tight = {
            **limits,
            "user_limits": {
                user: {"rate_limit": 1, "rate_window_s": 600, "max_running": 1, "max_queued": 10}
            },
        }
        assert admin.put("/api/v1/admin/limits", json=tight).status_code == 200
        try:
            with fake_server.client(key) as client:
                results = [
                    client.post(
                        "/api/v1/executions",
                        params={"wait": "true"},
                        json={"language": "fake", "source": "out x"},
                    )
                    for _ in range(2)
                ]
        finally:
            admin.put("/api/v1/admin/limits", json=limits)
    assert [r.status_code for r in results] == [200, 429]
    assert results[0].json()["status"] == "succeeded"
    assert results[1].json()["limit"] == "rate_limit"


def test_health_and_metrics(fake_server: Server) -> None:
    with fake_server.client(None) as client:
        assert client.get("/health/live").json()["status"] == "ok"
        assert client.get("/health/ready").json()["status"] == "ok"
        metrics = client.get("/metrics").text
    for name in (
        "codeexec_queue_depth",
        "codeexec_executions",
        "codeexec_consumer_lag",
        "codeexec_http_request_seconds_bucket",
    ):
        assert name in metrics


def test_the_web_page_is_served_without_external_assets(fake_server: Server) -> None:
    with fake_server.client(None) as client:
        page = client.get("/")
        script = client.get("/static/app.js")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text
    assert script.status_code == 200


def test_anonymous_access_only_when_enabled_on_loopback(tmp_path: Path) -> None:
    server = start_server("fake", tmp_path, {"CODEEXEC_ALLOW_ANONYMOUS": "1"})
    try:
        with server.client(None) as anonymous:
            response = anonymous.post(
                "/api/v1/executions",
                params={"wait": "true"},
                json={"language": "fake", "source": "out hi"},
            )
        assert (response.status_code, response.json()["user_id"]) == (200, "anonymous")
    finally:
        stop_server(server)
