"""The HTTP app under uvicorn in a child process, as the e2e tests, the benchmarks and the
screenshot scripts start it: a free port, the data dir and sandbox from the environment,
and the wait until `/health/ready` answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_app(
    data_dir: Path,
    sandbox: str,
    *,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    output: IO[bytes] | None = None,
    ready_s: float = 30,
) -> tuple[subprocess.Popen[bytes], str]:
    """`codeexec_server.app:app_from_env` on a free port of `host`, ready: the process and
    its URL. `output` takes its stdout and stderr. Raises RuntimeError if the process ends
    or is not ready within `ready_s` (then it is killed)."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "codeexec_server.app:app_from_env",
            "--host",
            host,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "5",
        ],
        env={
            **os.environ,
            "CODEEXEC_DATA_DIR": str(data_dir),
            "CODEEXEC_SANDBOX": sandbox,
            **(env or {}),
        },
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(f"the server did not become ready in {ready_s:g} s")
