"""E2E: `codeexec serve`'s life: a clean stop on SIGTERM, a refused corrupt store, a private
data dir (issue 8, findings 12, 14 and 6)."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
from codeexec_server.keystore import KeyStore

from tests.e2e.sse import read_events
from tests.e2e.uvicorn_app import free_port

pytestmark = pytest.mark.e2e
TERMINAL = ("completed", "failed", "timed_out", "cancelled", "rejected")


def serve_command(data_dir: Path, port: int) -> list[str]:
    serve = ["serve", "--sandbox", "fake", "--port", str(port), "--data-dir", str(data_dir)]
    return [sys.executable, "-m", "codeexec_server.cli", *serve]


@contextmanager
def serving(
    data_dir: Path, env: dict[str, str], umask: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log = data_dir.parent / f"{data_dir.name}-serve.log"
    process = subprocess.Popen(
        serve_command(data_dir, port),
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        preexec_fn=None if umask is None else partial(os.umask, umask),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30  # a guard against hanging, not a speed check
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def view(client: httpx.Client, execution_id: str, until: tuple[str, ...]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        found: dict[str, object] = client.get(f"/api/v1/executions/{execution_id}").json()
        if found["state"] in until:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def test_sigterm_lets_short_runs_finish_and_reports_long_ones_lost_with_output(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    keys = KeyStore.in_data_dir(data_dir)
    key = keys.create("alice")
    keys.close()
    headers = {"Authorization": f"Bearer {key}"}
    env = {"CODEEXEC_SHUTDOWN_GRACE_S": "5"}
    with serving(data_dir, env) as (url, process):
        client = httpx.Client(base_url=url, headers=headers, timeout=30)
        submit = {"language": "fake"}
        long = client.post("/api/v1/executions", json={**submit, "source": "out start\nhang"})
        short = client.post(
            "/api/v1/executions", json={**submit, "source": "out a\nsleep 1\nout b"}
        )
        long_id, short_id = long.json()["id"], short.json()["id"]
        read_events(client, long_id, until=lambda e: e.event == "ExecutionOutput")
        view(client, short_id, until=("running", *TERMINAL))
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down, then ends by the signal it caught (as a shell expects).
        assert process.wait(60) in (0, -signal.SIGTERM)
    with serving(data_dir, env) as (url, _):
        client = httpx.Client(base_url=url, headers=headers, timeout=30)
        finished = view(client, short_id, until=TERMINAL)
        assert (finished["status"], finished["stdout"]) == ("succeeded", "a\nb\n")
        lost = view(client, long_id, until=TERMINAL)
        assert (lost["status"], lost["stdout"]) == ("internal_error", "start\n")
        assert "lost" in str(lost["message"])


@pytest.mark.parametrize("damage", ["garbage", "half-written"])
def test_serve_refuses_a_corrupt_store_in_one_line_before_serving(
    tmp_path: Path, damage: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database = data_dir / "events.sqlite3"
    if damage == "garbage":
        database.write_bytes(os.urandom(64 * 1024))
    else:
        # A real store cut short, as a copy or a disk-full write leaves it.
        seed = sqlite3.connect(database)
        seed.execute("CREATE TABLE stored_events (id INTEGER PRIMARY KEY, state BLOB)")
        seed.executemany(
            "INSERT INTO stored_events (state) VALUES (?)", [(os.urandom(300),)] * 2000
        )
        seed.commit()
        seed.close()
        os.truncate(database, database.stat().st_size // 2)
    done = subprocess.run(
        serve_command(data_dir, free_port()), capture_output=True, timeout=60, env=os.environ
    )
    assert done.returncode == 74, done.stderr
    assert b"serving on" not in done.stdout
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert str(database) in lines[0] and "cannot be read" in lines[0]


def test_serve_keeps_the_data_dir_private_even_with_umask_000(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    keys = KeyStore.in_data_dir(data_dir)
    key = keys.create("alice")
    keys.close()
    os.chmod(data_dir, 0o755)  # as an older version or a loose umask left it
    with serving(data_dir, {}, umask=0) as (url, _):
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
        done = client.post(
            "/api/v1/executions",
            params={"wait": "true"},
            json={"language": "fake", "source": "out secret"},
        )
        assert done.status_code == 200
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.iterdir()}
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert {"events.sqlite3-wal", "events.sqlite3-shm", "runtime.lock"} <= set(modes)
        assert modes == dict.fromkeys(modes, 0o600)


def test_serve_takes_the_api_bounds_from_the_environment(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    keys = KeyStore.in_data_dir(data_dir)
    key = keys.create("alice")
    keys.close()
    with serving(data_dir, {"CODEEXEC_MAX_STREAMS_PER_USER": "1"}) as (url, _):
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            body = {"language": "fake", "source": "sleep 30"}
            execution_id = client.post("/api/v1/executions", json=body).json()["id"]
            events = f"/api/v1/executions/{execution_id}/events"
            with client.stream("GET", events) as first:
                assert first.status_code == 200
                second = client.get(events)
                assert second.status_code == 429, second.text
                assert second.json()["limit"] == "max_streams_per_user"
            client.post(f"/api/v1/executions/{execution_id}/cancel")
