"""TestMongoServer: a MongoDB wire-protocol server (nx-27017, on SQLite) that the tests and
benchmarks start on a free loopback port. Not MongoDB: see docs/mongo.md for where it
differs (the store is written for real MongoDB, never for its deviations). Install it with
`pip install codeexec-mongo[test]`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from pymongo import MongoClient
from pymongo.errors import PyMongoError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def nx_binary() -> str:
    beside = Path(sys.executable).parent / "nx-27017"  # the venv's, even if not on PATH
    found = str(beside) if beside.exists() else shutil.which("nx-27017")
    if found is None:
        raise RuntimeError("the test server is the nx-27017 package: pip install nx-27017")
    return found


class TestMongoServer:
    """`with TestMongoServer(workdir) as server:` ... `server.url` is a connection string."""

    __test__ = False  # not a pytest test class

    def __init__(self, workdir: Path, host: str = "127.0.0.1", port: int | None = None):
        self.workdir, self.host, self.port = workdir, host, port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.workdir / "nx-27017.out", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                nx_binary(),
                *("--data-dir", str(self.workdir / "data")),
                *("--host", self.host, "-p", str(self.port)),
                # its defaults are shared files in /tmp: two servers would overwrite them
                *("--pid-file", str(self.workdir / "nx.pid")),
                *("--log-file", str(self.workdir / "nx.log")),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"nx-27017 exited {self.process.returncode}; see {self.workdir}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nx-27017 did not answer on {self.port} in {timeout}s")
            time.sleep(0.05)

    def answers(self) -> bool:
        client: MongoClient[dict[str, object]] = MongoClient(
            self.url, serverSelectionTimeoutMS=500, connectTimeoutMS=500
        )
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> TestMongoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
