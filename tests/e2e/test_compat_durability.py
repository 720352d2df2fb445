"""E2E: Judge0's extras (expected output, limits as stated, language id) are recorded with the
submission in the event store, not beside it: they survive the loss of every local Judge0
file, as they would be seen by another API process over the same store."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import start_server, stop_server

pytestmark = pytest.mark.e2e
FIELDS = "token,status,expected_output,cpu_time_limit,memory_limit,language_id,stdout"


def test_the_extras_are_read_from_the_recorded_submission(tmp_path: Path) -> None:
    server = start_server("fake", tmp_path)
    try:
        made = httpx.post(
            f"{server.url}/judge0/submissions?wait=true&fields={FIELDS}",
            json={
                "language_id": 71,
                "source_code": "out 41",
                "expected_output": "42",
                "cpu_time_limit": 1.5,
                "memory_limit": 65536,
            },
            headers={"X-Auth-Token": server.alice_key},
            timeout=30,
        )
        assert made.status_code == 201, made.text
        first = made.json()
        assert first["status"]["id"] == 4  # Wrong Answer: judged against the expected output
        assert (first["cpu_time_limit"], first["memory_limit"]) == ("1.5", 65536)
        stop_server(server)
        for leftover in tmp_path.glob("judge0.sqlite3*"):
            leftover.unlink()
        server = start_server("fake", tmp_path)  # new keys, same users
        shown = httpx.get(
            f"{server.url}/judge0/submissions/{first['token']}",
            params={"fields": FIELDS},
            headers={"X-Auth-Token": server.alice_key},
        )
        assert shown.status_code == 200, shown.text
        assert shown.json() == first
    finally:
        stop_server(server)
