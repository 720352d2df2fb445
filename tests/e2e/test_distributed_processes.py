"""E2E: the API and every role in separate OS processes (`codeexec api`, `codeexec role ...`)
on a real Kafka-protocol broker (tansu) and PostgreSQL, with the fake sandbox: an execution
submitted over HTTP reaches its terminal status (and the API process's /metrics shows the
roles' consumer lag), the role process's health port answers,
`codeexec keys` works against PostgreSQL, SIGTERM drains the worker and exits 0, and
`codeexec serve` runs everything in one process on the same bus and store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from codeexec.service.store_config import PostgresParams
from codeexec.testing.postgres import server_params
from codeexec_kafka.tansu import TansuBroker
from tests.e2e.uvicorn_app import free_port

pytestmark = pytest.mark.e2e
ROLES = ["coordinator", "saga", "worker", "projections", "relay", "dead-letters", "replay"]
TERMINAL = ("completed", "failed", "timed_out", "cancelled", "rejected")


def _admin_sql(statement: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_params().conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


@pytest.fixture
def database() -> Iterator[PostgresParams]:
    """A PostgreSQL database of this test's own, dropped afterwards."""
    name = f"codeexec_e2e_{uuid.uuid4().hex[:12]}"
    _admin_sql("CREATE DATABASE {}", name)
    try:
        yield replace(server_params(), dbname=name)
    finally:
        _admin_sql("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with TansuBroker(log=log) as running:
        yield running


@pytest.fixture
def env(database: PostgresParams, broker: TansuBroker) -> dict[str, str]:
    return {
        **os.environ,
        "CODEEXEC_BUS": "kafka",
        "CODEEXEC_KAFKA_BOOTSTRAP": broker.bootstrap,
        "CODEEXEC_STORE": "postgres",
        "CODEEXEC_SANDBOX": "fake",
        **database.env(),
    }


def codeexec(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "codeexec_server.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def start(env: dict[str, str], data_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    """A long-running `codeexec` process with a data dir of its own, as on its own host."""
    data_dir.mkdir()
    log = (data_dir.parent / f"{data_dir.name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "codeexec_server.cli", *args],
        env={**env, "CODEEXEC_DATA_DIR": str(data_dir)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    deadline = time.monotonic() + 60  # a guard against hanging, not a speed check
    while True:
        assert process.poll() is None, log.read_text()
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} never ready:\n{log.read_text()}"
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes], log: Path) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"no exit 30 s after SIGTERM:\n{log.read_text()}") from None


def test_keys_are_created_listed_and_revoked_in_postgres(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "CODEEXEC_DATA_DIR": str(tmp_path / "nowhere")}
    created = codeexec(env, "keys", "create", "--user", "alice")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert created.stdout == key + "\n" and key.startswith("cx_")  # the key and nothing else
    admin = codeexec(env, "keys", "create", "--admin")
    assert admin.returncode == 0, admin.stderr

    listed = codeexec(env, "keys", "list")
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("alice", "user", "active"),
        ("admin", "admin", "active"),
    ]
    assert key not in listed.stdout
    assert not (tmp_path / "nowhere").exists()  # nothing went to a local file

    assert codeexec(env, "keys", "revoke", rows[0][0]).returncode == 0
    listed = codeexec(env, "keys", "list")
    assert [r.split("\t")[3] for r in listed.stdout.splitlines()] == ["revoked", "active"]
    again = codeexec(env, "keys", "revoke", rows[0][0])
    assert again.returncode == 1 and "no active key" in again.stderr


def test_api_and_roles_in_separate_processes_run_an_execution_to_its_end(
    env: dict[str, str], tmp_path: Path
) -> None:
    key = codeexec(env, "keys", "create", "--user", "alice").stdout.strip()
    health_port, api_port = free_port(), free_port()
    roles = start(env, tmp_path / "roles", "role", *ROLES, "--health-port", str(health_port))
    api = start(env, tmp_path / "api", "api", "--port", str(api_port))
    roles_log, api_log = tmp_path / "roles.log", tmp_path / "api.log"
    try:
        health = f"http://127.0.0.1:{health_port}/health"
        ready = wait_ready(f"{health}/ready", roles, roles_log).json()
        assert ready["status"] == "ok"
        assert {"coordinator", "saga", "worker", "projections", "relay"} <= ready["roles"].keys()
        assert httpx.get(f"{health}/live").json() == {"status": "ok"}
        assert httpx.get(f"{health}/nothing").status_code == 404

        url = f"http://127.0.0.1:{api_port}"
        wait_ready(f"{url}/health/ready", api, api_log)
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            submitted = client.post(
                "/api/v1/executions", json={"language": "fake", "source": "out héllo\nexit 3"}
            )
            assert submitted.status_code == 202, submitted.text
            execution_id = submitted.json()["id"]
            deadline = time.monotonic() + 60
            while (view := client.get(f"/api/v1/executions/{execution_id}").json())[
                "state"
            ] not in TERMINAL:
                assert time.monotonic() < deadline, view
                time.sleep(0.1)
            assert (view["status"], view["exit_code"], view["stdout"]) == (
                "runtime_error",
                3,
                "héllo\n",
            ), view
            waited = client.post(
                "/api/v1/executions",
                params={"wait": "true"},
                json={"language": "fake", "source": "out again"},
            ).json()
            assert (waited["status"], waited["stdout"]) == ("succeeded", "again\n"), waited
            # The API process heard the roles' events from the bus: its waits and event
            # streams wake on them (without it a wait answered only after a second of
            # silence, when it read the store).
            assert live_feed_wakeups(url) > 0
        # The API process has no member of any group, yet reports the roles' consumer lag,
        # read from the broker: each group has committed everything it was sent.
        caught_up = {"coordinator": 0.0, "saga": 0.0, "projections": 0.0, "worker": 0.0}
        deadline = time.monotonic() + 60
        while (lag := consumer_lag(url)).keys() < caught_up.keys() or any(
            lag[group] for group in caught_up
        ):
            assert time.monotonic() < deadline, lag
            time.sleep(0.2)
    finally:
        api_exit, roles_exit = stop(api, api_log), stop(roles, roles_log)
    assert api_exit == 0, api_log.read_text()
    assert roles_exit == 0, roles_log.read_text()


def live_feed_wakeups(url: str) -> float:
    """`codeexec_live_feed_wakeups_total` from a process's /metrics (0 if it has none)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    prefix = "codeexec_live_feed_wakeups_total "
    found = [float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
    return found[0] if found else 0.0


def consumer_lag(url: str) -> dict[str, float]:
    """`codeexec_consumer_lag{group}` from a process's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    prefix = 'codeexec_consumer_lag{group="'
    return {
        line[len(prefix) :].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def wait_for(client: httpx.Client, execution_id: str, states: tuple[str, ...]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        view: dict[str, object] = client.get(f"/api/v1/executions/{execution_id}").json()
        if view["state"] in states:
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.1)


def test_sigterm_lets_the_worker_finish_its_run_and_a_restart_reports_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    key = codeexec(env, "keys", "create", "--user", "alice").stdout.strip()
    health_port, api_port = free_port(), free_port()
    role_args = ["role", *ROLES, "--health-port", str(health_port)]
    roles = start(env, tmp_path / "roles", *role_args)
    api = start(env, tmp_path / "api", "api", "--port", str(api_port))
    roles_log, api_log = tmp_path / "roles.log", tmp_path / "api.log"
    url = f"http://127.0.0.1:{api_port}"
    try:
        wait_ready(f"http://127.0.0.1:{health_port}/health/ready", roles, roles_log)
        wait_ready(f"{url}/health/ready", api, api_log)
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            source = "out start\nsleep 1.5\nout end"
            submitted = client.post(
                "/api/v1/executions", json={"language": "fake", "source": source}
            )
            execution_id = submitted.json()["id"]
            wait_for(client, execution_id, ("running",))
            assert stop(roles, roles_log) == 0, roles_log.read_text()  # drained, then exit 0

            # The run ended before the process did: it is reported, and nothing runs again
            # once the roles are back.
            roles = subprocess.Popen(
                [sys.executable, "-m", "codeexec_server.cli", *role_args],
                env={**env, "CODEEXEC_DATA_DIR": str(tmp_path / "roles")},
                stdout=roles_log.open("ab"),
                stderr=subprocess.STDOUT,
            )
            wait_ready(f"http://127.0.0.1:{health_port}/health/ready", roles, roles_log)
            view = wait_for(client, execution_id, TERMINAL)
            assert (view["status"], view["stdout"]) == ("succeeded", "start\nend\n"), view
    finally:
        api_exit, roles_exit = stop(api, api_log), stop(roles, roles_log)
    assert api_exit == 0 and roles_exit == 0


def test_serve_runs_every_role_in_one_process_on_kafka_and_postgres(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    serve = start(env, tmp_path / "serve", "serve", "--port", str(port))
    log = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/health/ready", serve, log)
        first = log.read_text().splitlines()[0]
        assert first.startswith("Created the first admin key"), first
        key = first.rsplit(" ", 1)[1]
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            done = client.post(
                "/api/v1/executions",
                params={"wait": "true"},
                json={"language": "fake", "source": "out one process"},
            ).json()
            assert (done["status"], done["stdout"]) == ("succeeded", "one process\n"), done
    finally:
        code = stop(serve, log)
    assert code == 0, log.read_text()
    listed = codeexec(env, "keys", "list").stdout  # the key went to PostgreSQL
    assert listed.split("\t")[1:3] == ["admin", "admin"]


def test_two_serve_processes_on_one_broker_both_follow_every_execution(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Two `serve`s on one broker and store share every consumer group: each projector has
    only some partitions, so each process's waits also follow the bus (without it, a wait
    for an execution projected by the other process answered after a second of silence)."""
    ports = [free_port(), free_port()]
    logs = [tmp_path / "serve-1.log", tmp_path / "serve-2.log"]
    first = start(env, tmp_path / "serve-1", "serve", "--port", str(ports[0]))
    processes = [first]
    try:
        wait_ready(f"http://127.0.0.1:{ports[0]}/health/ready", first, logs[0])
        key = logs[0].read_text().splitlines()[0].rsplit(" ", 1)[1]
        second = start(env, tmp_path / "serve-2", "serve", "--port", str(ports[1]))
        processes.append(second)
        wait_ready(f"http://127.0.0.1:{ports[1]}/health/ready", second, logs[1])
        for port in ports:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
            ) as client:
                for n in range(8):
                    done = client.post(
                        "/api/v1/executions",
                        params={"wait": "true"},
                        json={"language": "fake", "source": f"out {n}"},
                    ).json()
                    assert (done["status"], done["stdout"]) == ("succeeded", f"{n}\n"), done
            assert live_feed_wakeups(url) > 0, port
    finally:
        codes = [stop(process, log) for process, log in zip(processes, logs, strict=False)]
    assert codes == [0] * len(processes), [log.read_text() for log in logs]


@pytest.mark.parametrize("command", [["role", "worker"], ["api"]], ids=["role", "api"])
def test_unreachable_brokers_stop_a_process_at_start_with_69(
    env: dict[str, str], tmp_path: Path, command: list[str]
) -> None:
    nobody = {
        **env,
        "CODEEXEC_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # nothing listens there
        "CODEEXEC_KAFKA_REQUEST_TIMEOUT_MS": "2000",
        "CODEEXEC_DATA_DIR": str(tmp_path / "process"),
    }
    port = ["--port", str(free_port())] if command == ["api"] else []
    done = codeexec(nobody, *command, *port)  # the API starts its runtime inside uvicorn
    assert done.returncode == 69, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("codeexec: the Kafka brokers at CODEEXEC_KAFKA_BOOTSTRAP=127.0.0.1:")
