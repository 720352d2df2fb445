"""E2E: the `codeexec` CLI: run exit codes (embedded and through a server), keys, status, events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, local_sandbox_missing

pytestmark = pytest.mark.e2e


def codeexec(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "codeexec_server.cli", *args],
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "CODEEXEC_SANDBOX": "fake", **(env or {})},
    )


@pytest.mark.parametrize(
    ("script", "code"),
    [
        ("out hi", 0),
        ("out hi\nexit 3", 3),
        ("status time_limit_exceeded", 124),
        ("status memory_limit_exceeded", 125),
        ("status output_limit_exceeded", 126),
        ("status compilation_error", 127),
        ("status cancelled", 130),
        ("status internal_error", 70),
        ("bogus directive", 70),
    ],
)
def test_run_exits_with_a_code_for_each_status(tmp_path: Path, script: str, code: int) -> None:
    program = tmp_path / "prog.fake"
    program.write_text(script)
    done = codeexec("run", str(program))
    assert done.returncode == code, done.stderr
    if script.startswith("out hi"):
        assert done.stdout == b"hi\n"


def test_run_usage_errors_exit_2(tmp_path: Path) -> None:
    assert codeexec("run", str(tmp_path / "missing.py")).returncode == 2
    unknown = tmp_path / "prog.unknownext"
    unknown.write_text("x")
    assert codeexec("run", str(unknown)).returncode == 2
    assert codeexec("frobnicate").returncode == 2


def test_run_with_the_real_local_sandbox(tmp_path: Path) -> None:
    if reason := local_sandbox_missing():
        pytest.skip(f"real local sandbox unavailable: {reason}")
    program = tmp_path / "prog.py"
    program.write_text("import sys\nprint(sys.stdin.read().upper())\nsys.exit(4)\n")
    stdin = tmp_path / "in.txt"
    stdin.write_text("shout")
    done = codeexec("run", str(program), "--stdin", str(stdin), env={"CODEEXEC_SANDBOX": "local"})
    assert (done.returncode, done.stdout) == (4, b"SHOUT\n"), done.stderr


def test_run_through_a_server_streams_output_and_exits_with_the_code(
    fake_server: Server, tmp_path: Path
) -> None:
    program = tmp_path / "prog.fake"
    program.write_text("out one\nerr two\nexit 5")
    done = codeexec(
        "run",
        str(program),
        "--language",
        "fake",
        "--server",
        fake_server.url,
        "--key",
        fake_server.alice_key,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        5,
        b"one\n",
        b"two\ncodeexec: runtime_error\n",
    )


def test_run_through_an_unreachable_server_fails(tmp_path: Path) -> None:
    program = tmp_path / "prog.fake"
    program.write_text("out hi")
    done = codeexec("run", str(program), "--server", "http://127.0.0.1:9", "--key", "k")
    assert done.returncode == 69


def test_keys_create_prints_only_the_new_key_and_it_works(fake_server: Server) -> None:
    done = codeexec("keys", "create", "--user", "carol", "--data-dir", str(fake_server.data_dir))
    assert done.returncode == 0
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cx_")
    response = httpx.get(
        f"{fake_server.url}/api/v1/languages", headers={"Authorization": f"Bearer {lines[0]}"}
    )
    assert response.status_code == 200
    listed = codeexec("keys", "list", "--data-dir", str(fake_server.data_dir)).stdout.decode()
    assert "carol\tuser\tactive" in listed
    assert lines[0] not in listed


def test_keys_revoke_stops_the_key(tmp_path: Path) -> None:
    key = codeexec("keys", "create", "--data-dir", str(tmp_path)).stdout.decode().strip()
    key_id = codeexec("keys", "list", "--data-dir", str(tmp_path)).stdout.decode().split("\t")[0]
    assert codeexec("keys", "revoke", key_id, "--data-dir", str(tmp_path)).returncode == 0
    assert codeexec("keys", "revoke", key_id, "--data-dir", str(tmp_path)).returncode == 1
    from codeexec_server.keystore import KeyStore

    assert KeyStore.in_data_dir(tmp_path).authenticate(key) is None


def test_keys_revoke_stops_a_key_the_server_has_been_taking(fake_server: Server) -> None:
    """The server remembers keys it has checked; `codeexec keys revoke` (another process)
    must still stop the key at the very next request."""
    key = fake_server.new_user_key("dora")
    with fake_server.client(key) as client:
        for _ in range(3):
            assert client.get("/api/v1/languages").status_code == 200
        data_dir = str(fake_server.data_dir)
        listed = codeexec("keys", "list", "--data-dir", data_dir).stdout.decode()
        key_id = next(line.split("\t")[0] for line in listed.splitlines() if "\tdora\t" in line)
        assert codeexec("keys", "revoke", key_id, "--data-dir", data_dir).returncode == 0
        assert client.get("/api/v1/languages").status_code == 401


def test_status_and_events_talk_to_the_server(fake_server: Server) -> None:
    created = httpx.post(
        f"{fake_server.url}/api/v1/executions",
        params={"wait": "true"},
        headers={"Authorization": f"Bearer {fake_server.alice_key}"},
        json={"language": "fake", "source": "out hi"},
    ).json()
    env = {"CODEEXEC_SERVER": fake_server.url, "CODEEXEC_KEY": fake_server.alice_key}
    status = codeexec("status", created["id"], env=env)
    events = codeexec("events", created["id"], env=env)
    languages = codeexec("languages", env=env)
    assert json.loads(status.stdout)["status"] == "succeeded"
    names = [json.loads(line)["event"] for line in events.stdout.decode().splitlines()]
    assert names[0] == "ExecutionRequested" and names[-1] == "ExecutionCompleted"
    assert b"fake\t1.0" in languages.stdout
    missing = codeexec("status", "00000000-0000-0000-0000-000000000000", env=env)
    assert missing.returncode == 1


def test_serve_refuses_anonymous_access_on_a_public_host(tmp_path: Path) -> None:
    done = codeexec(
        "serve", "--host", "0.0.0.0", "--allow-anonymous", "--data-dir", str(tmp_path), timeout=20
    )
    assert done.returncode == 2
    assert b"loopback" in done.stderr


def test_serve_refuses_a_data_dir_another_server_uses(fake_server: Server) -> None:
    done = codeexec("serve", "--port", "1", "--data-dir", str(fake_server.data_dir))
    assert done.returncode == 73
    assert b"is in use by pid" in done.stderr
