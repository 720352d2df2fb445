"""E2E: refusals on admission over HTTP (429/413 naming the limit, no payload stored), the
store's size in /metrics, and an Idempotency-Key reused for another request (422)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
SUBMIT = "/api/v1/executions"


@contextmanager
def user_limits(server: Server, **overrides: float) -> Iterator[str]:
    """A new user's key, with these limits for the duration."""
    user = f"admission-{uuid.uuid4().hex[:8]}"
    key = server.new_user_key(user)
    with server.client(server.admin_key) as admin:
        limits = admin.get("/api/v1/admin/limits").json()
        mine = {**limits["default_user_limits"], **overrides}
        changed = {**limits, "user_limits": {**limits["user_limits"], user: mine}}
        assert admin.put("/api/v1/admin/limits", json=changed).status_code == 200
        try:
            yield key
        finally:
            admin.put("/api/v1/admin/limits", json=limits)


def store_bytes(server: Server) -> int:
    text = httpx.get(f"{server.url}/metrics").text
    found = re.search(r"^codeexec_store_bytes (\S+)$", text, re.MULTILINE)
    assert found is not None, "no codeexec_store_bytes in /metrics"
    return int(float(found.group(1)))


def program(size: int) -> dict[str, str]:
    return {"language": "fake", "source": "out hi\n" + " " * (size - 7)}


def test_over_the_rate_limit_answers_429_and_stores_no_payload(fake_server: Server) -> None:
    with (
        user_limits(fake_server, rate_limit=1, rate_window_s=3600) as key,
        fake_server.client(key) as client,
    ):
        first = client.post(SUBMIT, params={"wait": "true"}, json=program(1000))
        assert first.json()["status"] == "succeeded"
        before = store_bytes(fake_server)
        refused = client.post(SUBMIT, json=program(2**20))
        grown = store_bytes(fake_server) - before
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["limit"] == "rate_limit" and "rate limit of 1 per 3600s" in problem["detail"]
    assert 3000 < int(refused.headers["Retry-After"]) <= 3600
    assert before > 0 and grown < 2**18  # the refusal's record, not the 1 MiB source
    metrics = httpx.get(f"{fake_server.url}/metrics").text
    assert 'codeexec_submissions_refused_total{limit="rate_limit"}' in metrics


def test_the_storage_quota_answers_429_then_413_naming_the_quota(fake_server: Server) -> None:
    with (
        user_limits(fake_server, storage_quota_bytes=10_000, storage_window_s=3600) as key,
        fake_server.client(key) as client,
    ):
        kept = client.post(SUBMIT, params={"wait": "true"}, json=program(6000))
        over = client.post(SUBMIT, json=program(6000))
        alone = client.post(SUBMIT, json=program(20_000))
    assert kept.status_code == 200
    assert over.status_code == 429 and over.json()["limit"] == "storage_quota_bytes"
    assert "storage quota of 10000 bytes per 3600s" in over.json()["detail"]
    assert 3000 < int(over.headers["Retry-After"]) <= 3600
    assert alone.status_code == 413 and alone.json()["limit"] == "storage_quota_bytes"
    assert "Retry-After" not in alone.headers


def test_the_storage_quota_is_in_the_limits_document(fake_server: Server) -> None:
    with fake_server.client(fake_server.admin_key) as admin:
        limits = admin.get("/api/v1/admin/limits").json()
        bad = {**limits, "default_user_limits": {**limits["default_user_limits"]}}
        bad["default_user_limits"]["storage_quota_bytes"] = -1
        refused = admin.put("/api/v1/admin/limits", json=bad)
    assert limits["default_user_limits"]["storage_quota_bytes"] == 2**30
    assert limits["default_user_limits"]["storage_window_s"] == 86_400
    assert refused.status_code == 422
    assert "default_user_limits.storage_quota_bytes" in [
        e["field"] for e in refused.json()["errors"]
    ]


def test_an_idempotency_key_reused_for_another_request_answers_422(fake_server: Server) -> None:
    key = {"Idempotency-Key": f"reuse-{uuid.uuid4()}"}
    with fake_server.client(fake_server.admin_key) as client:
        first = client.post(SUBMIT, json={"language": "fake", "source": "out 1"}, headers=key)
        same = client.post(SUBMIT, json={"language": "fake", "source": "out 1"}, headers=key)
        other = client.post(SUBMIT, json={"language": "fake", "source": "out 2"}, headers=key)
        priority = client.post(
            SUBMIT, json={"language": "fake", "source": "out 1", "priority": 5}, headers=key
        )
    assert first.status_code == 202 and same.json()["id"] == first.json()["id"]
    for reused in (other, priority):
        assert reused.status_code == 422, reused.text
        assert reused.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in reused.json()["errors"]] == ["Idempotency-Key"]
        assert first.json()["id"] in reused.json()["detail"]


def test_cli_run_refused_on_admission_exits_75(fake_server: Server, tmp_path: Path) -> None:
    program_file = tmp_path / "prog.fake"
    program_file.write_text("out hi")
    with user_limits(fake_server, rate_limit=1, rate_window_s=3600) as key:
        codes = [
            subprocess.run(
                [sys.executable, "-m", "codeexec_server.cli", "run", str(program_file)],
                capture_output=True,
                timeout=60,
                env={**os.environ, "CODEEXEC_SERVER": fake_server.url, "CODEEXEC_KEY": key},
            )
            for _ in range(2)
        ]
    assert [c.returncode for c in codes] == [0, 75], codes[1].stderr
    assert b"rate limit of 1 per 3600s" in codes[1].stderr
