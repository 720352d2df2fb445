"""SSE memory benchmark: server RSS while 20 clients hold event streams they never read.

Starts a server (uvicorn) on the real local sandbox, runs a program that writes 16 MiB to
stdout and 16 MiB to stderr, then opens 20 connections to its event stream with a tiny
receive window that never read, and samples the server's resident memory while they stay
open (shorter than the server's write timeout, so none has been dropped yet). Prints
`bench: NAME VALUE UNIT` lines: the baseline RSS after the run, the highest RSS with the
streams open, and the growth per stream.

    python bench/sse_memory_bench.py [--streams 20] [--hold 8]
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for tests.e2e
from tests.e2e.uvicorn_app import start_app

MIB = 2**20
PROGRAM = """import os
chunk = b"x" * 65536
for fd in (1, 2):
    for _ in range(256):
        os.write(fd, chunk)
"""


def report(name: str, value: float, unit: str) -> None:
    print(f"bench: {name} {value:.1f} {unit}", flush=True)


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) / 1024


def start_server(data_dir: Path, streams: int) -> tuple[subprocess.Popen[bytes], str, str]:
    from codeexec_server.keystore import KeyStore

    keys = KeyStore.in_data_dir(data_dir)
    key = keys.create("root", "admin")
    keys.close()
    # All of them are real streams.
    env = {"CODEEXEC_MAX_STREAMS_PER_USER": str(streams)}
    try:
        process, url = start_app(data_dir, "local", env=env)
    except RuntimeError as failure:
        raise SystemExit(str(failure)) from failure
    return process, url, key


def big_run(url: str, key: str) -> str:
    body = {
        "language": "python",
        "source": PROGRAM,
        "limits": {"output_bytes": 16 * MIB, "wall_time_s": 30},
    }
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        response = client.post(
            "/api/v1/executions", params={"wait": "true", "timeout": 60}, json=body, timeout=90
        )
    result = response.json()
    if response.status_code != 200 or result["status"] != "succeeded":
        raise SystemExit(f"the run did not succeed: {response.status_code} {result}")
    if len(result["stdout"]) != 16 * MIB or len(result["stderr"]) != 16 * MIB:
        raise SystemExit("the run did not write 16 MiB to each stream")
    return str(result["id"])


def non_reading_stream(url: str, key: str, execution_id: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET /api/v1/executions/{execution_id}/events HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {key}\r\n\r\n".encode()
    )
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--hold", type=float, default=8.0, help="seconds to keep them open")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process, url, key = start_server(Path(tmp), args.streams)
        try:
            execution_id = big_run(url, key)
            time.sleep(1.0)
            baseline = rss_mb(process.pid)
            sockets = [non_reading_stream(url, key, execution_id) for _ in range(args.streams)]
            peak = baseline
            deadline = time.monotonic() + args.hold
            while time.monotonic() < deadline:
                peak = max(peak, rss_mb(process.pid))
                time.sleep(0.2)
            for sock in sockets:
                sock.close()
        finally:
            process.terminate()
            process.wait(20)
    report("sse_rss_baseline", baseline, "MB")
    report(f"sse_rss_{args.streams}_nonreading_streams", peak, "MB")
    report("sse_rss_per_nonreading_stream", (peak - baseline) / args.streams, "MB")


if __name__ == "__main__":
    main()
