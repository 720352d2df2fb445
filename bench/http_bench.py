"""HTTP benchmark: hello-world Python over `codeexec serve` (wait=true) vs the bare interpreter.

Prints `bench: NAME VALUE UNIT` lines: end-to-end p50/p99 and their ratio to a bare
`python3 -c`, accept latency (submit until 202) p50/p99 with 32 concurrent clients, and
sustained executions per second. Starts its own server unless --server/--key are given.

    python bench/http_bench.py [--sandbox local|fake] [--runs 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HELLO = 'print("Hello, world!")'


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, value: float, unit: str) -> None:
    print(f"bench: {name} {value:.3f} {unit}", flush=True)


def bare_interpreter(runs: int, python: str | None) -> list[float]:
    # The local sandbox prefers the Debian interpreter; compare against the same binary.
    python = python or next(
        (p for p in ("/usr/bin/python3",) if os.path.exists(p)),
        os.path.realpath(shutil.which("python3") or sys.executable),
    )
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([python, "-c", HELLO], check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return samples


def start_server(sandbox: str, data_dir: Path) -> tuple[subprocess.Popen[str], str, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codeexec_server.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--sandbox",
            sandbox,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    key = re.search(r"cx_\S+", process.stdout.readline())
    if key is None:
        process.kill()
        raise SystemExit("the server did not print an admin key")
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return process, url, key.group(0)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not become ready")


def open_the_gates(client: httpx.Client) -> None:
    """Lift rate limits so the bench measures the platform, not its admission policy."""
    limits = client.get("/api/v1/admin/limits").json()
    limits["max_queue"] = 100_000
    limits["default_user_limits"] = {
        "rate_limit": 10_000_000,
        "rate_window_s": 1.0,
        "max_running": limits["max_running"],
        "max_queued": 100_000,
    }
    client.put("/api/v1/admin/limits", json=limits).raise_for_status()


def body(language: str) -> dict[str, str]:
    return {"language": language, "source": HELLO if language != "fake" else "out Hello"}


def end_to_end(client: httpx.Client, language: str, runs: int) -> list[float]:
    samples = []
    for _ in range(runs + 3):
        started = time.perf_counter()
        response = client.post("/api/v1/executions", params={"wait": "true"}, json=body(language))
        elapsed = time.perf_counter() - started
        result = response.json()
        if response.status_code != 200 or result["status"] != "succeeded":
            raise SystemExit(f"hello world did not succeed: {result}")
        samples.append(elapsed)
    return samples[3:]  # the first runs warm caches


async def accept_latency(url: str, key: str, language: str, clients: int, each: int) -> list[float]:
    samples: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as http:

        async def client() -> None:
            for _ in range(each):
                started = time.perf_counter()
                response = await http.post("/api/v1/executions", json=body(language))
                samples.append(time.perf_counter() - started)
                assert response.status_code == 202, response.text

        await asyncio.gather(*(client() for _ in range(clients)))
    return samples


async def sustained(url: str, key: str, language: str, clients: int, seconds: float) -> float:
    headers = {"Authorization": f"Bearer {key}"}
    done = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=70, limits=limits) as http:

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                response = await http.post(
                    "/api/v1/executions", params={"wait": "true"}, json=body(language)
                )
                if response.status_code == 200 and response.json()["status"] == "succeeded":
                    done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - started)


def drain(client: httpx.Client, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = client.get("/api/v1/admin/queue").json()
        if queue["queued"] == 0 and queue["running"] == 0:
            return
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", default=os.environ.get("CODEEXEC_SANDBOX", "local"))
    parser.add_argument("--server")
    parser.add_argument("--key")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--python", help="the bare interpreter to compare with")
    args = parser.parse_args()
    language = "fake" if args.sandbox == "fake" else "python"
    process = None
    with tempfile.TemporaryDirectory() as data_dir:
        if args.server:
            url, key = args.server, args.key
        else:
            process, url, key = start_server(args.sandbox, Path(data_dir))
        try:
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=70
            ) as client:
                open_the_gates(client)
                bare = bare_interpreter(args.runs, args.python)
                http = end_to_end(client, language, args.runs)
                for name, samples in (("bare_python", bare), ("http_wait", http)):
                    report(f"{name}_p50", percentile(samples, 0.5) * 1000, "ms")
                    report(f"{name}_p99", percentile(samples, 0.99) * 1000, "ms")
                report(
                    "http_wait_over_bare_p50", percentile(http, 0.5) / percentile(bare, 0.5), "x"
                )
                report(
                    "http_wait_over_bare_p99", percentile(http, 0.99) / percentile(bare, 0.99), "x"
                )
                accepts = asyncio.run(accept_latency(url, key, language, args.clients, 10))
                report(f"accept_p50_{args.clients}_clients", percentile(accepts, 0.5) * 1000, "ms")
                report(f"accept_p99_{args.clients}_clients", percentile(accepts, 0.99) * 1000, "ms")
                report("accept_mean", statistics.fmean(accepts) * 1000, "ms")
                drain(client)
                rate = asyncio.run(sustained(url, key, language, args.clients, args.seconds))
                report("sustained_executions", rate, "per_s")
        finally:
            if process is not None:
                process.terminate()
                process.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
