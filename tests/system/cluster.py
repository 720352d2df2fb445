"""Cluster: a tansu broker, a fresh PostgreSQL database (or MongoDB: a test server of its own)
and codeexec processes (the API and
roles, each an OS process with a data dir of its own) that a test kills and restarts.

The processes are started as an operator would start them on separate hosts:
`codeexec api --host H --port P` and `codeexec role NAME... --health-port P`, configured only
by environment variables (`Cluster.env`). Nothing of one process is visible to another except
through the broker and the database. Used by tests/system and bench/distributed_bench.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

import httpx

from codeexec.service.store_config import PostgresParams, StoreConfig, store_config
from codeexec.testing.postgres import server_params
from codeexec_kafka.tansu import TansuBroker, free_port

if TYPE_CHECKING:
    from codeexec_mongo.test_server import TestMongoServer
    from tests.system.fake_kubernetes import FakeKubernetes

CODEEXEC = [sys.executable, "-m", "codeexec_server.cli"]
ALL_ROLES = ("coordinator", "saga", "worker", "projections", "relay", "dead-letters", "replay")


def api_argv(port: int) -> list[str]:
    return [*CODEEXEC, "api", "--host", "127.0.0.1", "--port", str(port)]


def role_argv(roles: Sequence[str], health_port: int) -> list[str]:
    return [*CODEEXEC, "role", *roles, "--health-port", str(health_port)]


def local_sandbox_missing() -> str | None:
    """Why the local sandbox cannot run here, or None when it can."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed: apt-get install -y bubblewrap"
    return None


class Database:
    """A PostgreSQL database of its own, created now and dropped (FORCE) on `drop()`."""

    def __init__(self, prefix: str = "codeexec_system") -> None:
        self.params = server_params(f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}")
        self._admin("CREATE DATABASE {}")

    def _admin(self, statement: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(server_params().conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(self.params.dbname)))

    def drop(self) -> None:
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")


@dataclass
class Node:
    """One codeexec process: started, killed (-9) and restarted on the same port and data
    dir, as a supervisor (systemd, Kubernetes) would restart it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    data_dir: Path
    ready_url: str
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, f"{self.name} runs"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self._log or self.log_path.open("ab")
        self._log.write(f"--- start {self.starts + 1} of {self.name}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            self.argv,
            env={**self.env, "CODEEXEC_DATA_DIR": str(self.data_dir)},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
        )
        self.starts += 1

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        answer = "no answer"
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                response = httpx.get(self.ready_url, timeout=1)
                if response.status_code == 200:
                    return
                answer = f"{response.status_code} {response.text}"
            except httpx.HTTPError as error:
                answer = repr(error)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} not ready in {timeout} s ({answer}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a host dies."""
        assert self.process is not None and self.process.poll() is None, f"{self.name} is down"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code (None if it had to be killed)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None

    def restart(self, timeout: float = 60.0) -> None:
        self.start()
        self.wait_ready(timeout)

    def close(self) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Cluster:
    """`with Cluster(root, sandbox="local") as cluster:` then `add_api`, `add_role`, `start`.

    `env` is what every process gets (the broker, the store, the sandbox); `extra_env` adds
    to it (shorter timeouts for tests)."""

    def __init__(
        self,
        root: Path,
        sandbox: str = "fake",
        extra_env: Mapping[str, str] | None = None,
        store: str = "postgres",
    ) -> None:
        self.root = root
        self.sandbox = sandbox
        self.store = store  # postgres, or mongo (on an nx-27017 test server)
        self.mongo: TestMongoServer | None = None
        self.extra_env = dict(extra_env or {})
        self.broker = TansuBroker(log=root / "tansu.log")
        self.database: Database | None = None
        self.nodes: dict[str, Node] = {}
        self.fake_kubernetes: FakeKubernetes | None = None
        """The fake Kubernetes API server the workers' pods run on, if any."""

    @property
    def postgres(self) -> PostgresParams:
        assert self.database is not None, "the cluster is not started"
        return self.database.params

    @property
    def store_env(self) -> dict[str, str]:
        """What chooses and reaches the shared store."""
        if self.store == "mongo":
            assert self.mongo is not None, "the cluster is not started"
            url = self.mongo.url
            return {"CODEEXEC_STORE": "mongo", "CODEEXEC_MONGO_URL": url, "CODEEXEC_MONGO_DB": "cx"}
        pg = self.postgres
        return {
            "CODEEXEC_STORE": "postgres",
            "POSTGRES_DBNAME": pg.dbname,
            "POSTGRES_HOST": pg.host,
            "POSTGRES_PORT": str(pg.port),
            "POSTGRES_USER": pg.user,
            "POSTGRES_PASSWORD": pg.password,
        }

    def store_config(self) -> StoreConfig:
        """The shared store as the processes see it (for reading it from the test)."""
        if self.store == "mongo":
            from codeexec_mongo import store_config as mongo_store_config

            return mongo_store_config(None, self.store_env)
        return store_config("postgres", environ=self.postgres.env())

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CODEEXEC_BUS": "kafka",
            "CODEEXEC_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            **self.store_env,
            "CODEEXEC_SANDBOX": self.sandbox,
            **self.extra_env,
        }

    def __enter__(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.broker.start()
        try:
            self.database = Database()  # PostgreSQL also holds nothing with mongo: cheap
            if self.store == "mongo":
                from codeexec_mongo.test_server import TestMongoServer

                self.mongo = TestMongoServer(self.root / "mongo")
                self.mongo.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for node in reversed(self.nodes.values()):
            node.close()
        self.broker.stop()
        if self.mongo is not None:
            self.mongo.stop()
            self.mongo = None
        if self.database is not None:
            self.database.drop()
            self.database = None

    def add_api(self, name: str = "api", env: Mapping[str, str] | None = None) -> Node:
        port = free_port()
        return self._add(name, api_argv(port), f"http://127.0.0.1:{port}/health/ready", env)

    def add_role(
        self, name: str, roles: Sequence[str], env: Mapping[str, str] | None = None
    ) -> Node:
        port = free_port()
        return self._add(name, role_argv(roles, port), f"http://127.0.0.1:{port}/health/ready", env)

    def _add(self, name: str, argv: list[str], ready: str, env: Mapping[str, str] | None) -> Node:
        assert name not in self.nodes, f"two nodes named {name}"
        node = Node(name, argv, {**self.env, **(env or {})}, self.root / name / "data", ready)
        self.nodes[name] = node
        return node

    def start(self, timeout: float = 90.0) -> None:
        """Start every node not running, one after the other, each once the one before is
        ready (a failure then names its node). Starting together is safe too: the store's
        schema lock makes processes take turns creating eventsourcing's tables and
        functions (`test_processes_starting_together_on_a_new_schema_all_open_the_store`)."""
        for node in [n for n in self.nodes.values() if n.process is None]:
            node.start()
            node.wait_ready(timeout)

    def url(self, api: str = "api") -> str:
        return self.nodes[api].ready_url.removesuffix("/health/ready")

    def codeexec(self, *args: str) -> str:
        """Run a `codeexec` command with the cluster's environment (no data dir shared
        with any node); its stdout, or RuntimeError with its stderr."""
        scratch = self.root / "cli"
        scratch.mkdir(exist_ok=True)
        done = subprocess.run(
            [*CODEEXEC, *args],
            env={**self.env, "CODEEXEC_DATA_DIR": str(scratch)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"codeexec {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done.stdout

    def create_key(self, user: str | None = None, admin: bool = False) -> str:
        """A new API key in the shared store, through `codeexec keys create`."""
        role = ["--admin"] if admin else []
        return self.codeexec("keys", "create", *role, *(["--user", user] if user else [])).strip()

    def logs(self, lines: int = 30) -> str:
        return "\n".join(f"== {n.name}\n{n.log_tail(lines)}" for n in self.nodes.values())
