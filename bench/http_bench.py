"""HTTP benchmark: hello-world Python through `codeexec serve`, side by side with bare Python.

Prints `bench: NAME VALUE UNIT` lines, each measured in this run against the same Debian
interpreter the sandbox runs:

    http_wait_p50 / p99 and bare_python_p50 / p99: `POST ?wait=true` end to end, interleaved
    http_wait_over_bare_p50 / p99
    accept_p50 / p99_<N>_clients: submit until 202, N (32) clients at once (httpx)
    accept_wrk_p50 / p99 / rate_<N>_clients: the same from wrk, when installed (its own CPU
        does not inflate the figure as httpx's does)
    http_sustained_8 and bare_python_sustained_8 runs/s, and their ratio: 8 at a time
    http_wrk_sustained_8: the 8 waiting clients from wrk (httpx's own CPU bounds the former),
        interleaved with the same bare phases: http_wrk_sustained_8_over_bare
    http_client_cpu_per_run: the benchmark's own (httpx) CPU per run in the sustained phase
    sustained_executions: runs/s with N clients (with --sandbox fake: the platform alone)
    server_rss_idle / _8_running / _pool_full (MiB) and sandbox_helpers_pss_idle /
    _pool_full (MiB): the server process, and the zygote and prepared boxes under it

Names carry a `fake_` prefix with --sandbox fake, and the setup's name for other setups.
Starts its own server unless --server/--key are given.

    python bench/http_bench.py [--sandbox local|fake] [--setup embedded] [--runs 50]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cpumeter import CpuMeter
from wrk_accept import accept_with_wrk

HELLO = 'print("Hello, world!")'


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, value: float, unit: str) -> None:
    print(f"bench: {name} {value:.3f} {unit}", flush=True)


def bare_python(python: str | None) -> str:
    # The local sandbox prefers the Debian interpreter; compare against the same binary.
    return python or next(
        (p for p in ("/usr/bin/python3",) if os.path.exists(p)),
        os.path.realpath(shutil.which("python3") or sys.executable),
    )


def bare_once(python: str) -> float:
    started = time.perf_counter()
    subprocess.run([python, "-c", HELLO], check=True, capture_output=True)
    return time.perf_counter() - started


async def bare_sustained(python: str, clients: int, seconds: float) -> float:
    """The bare interpreter run `clients` at a time for `seconds`: runs per second."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            proc = await asyncio.create_subprocess_exec(
                python, "-c", HELLO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            await proc.communicate()
            done += proc.returncode == 0

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - started)


def start_server(
    sandbox: str, data_dir: Path, env: dict[str, str] | None = None, python: str | None = None
) -> tuple[subprocess.Popen[str], str, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            python or sys.executable,
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
        env={**os.environ, **(env or {})},
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


def wait_once(client: httpx.Client, language: str) -> float:
    started = time.perf_counter()
    response = client.post("/api/v1/executions", params={"wait": "true"}, json=body(language))
    elapsed = time.perf_counter() - started
    result = response.json()
    if response.status_code != 200 or result["status"] != "succeeded":
        raise SystemExit(f"hello world did not succeed: {result}")
    return elapsed


def end_to_end(client: httpx.Client, language: str, runs: int) -> list[float]:
    for _ in range(3):  # the first runs warm caches
        wait_once(client, language)
    return [wait_once(client, language) for _ in range(runs)]


def interleaved(
    client: httpx.Client, language: str, runs: int, python: str
) -> tuple[list[float], list[float]]:
    """End to end and bare, taken in turns: the same load on both."""
    for _ in range(3):
        wait_once(client, language)
        bare_once(python)
    http: list[float] = []
    bare: list[float] = []
    for _ in range(runs):
        http.append(wait_once(client, language))
        bare.append(bare_once(python))
    return http, bare


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


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the zygote and its boxes, under a server)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
                parents[int(entry)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def pss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += int(next(line for line in f if line.startswith("Pss:")).split()[1])
        except (OSError, StopIteration):
            continue
    return total / 1024


async def peak_rss(pid: int, until: asyncio.Future[None]) -> float:
    peak = 0.0
    while not until.done():
        peak = max(peak, rss_mib(pid))
        await asyncio.sleep(0.1)
    return peak


def others_cpu(meter: CpuMeter) -> float:
    """CPU of everything in the meter's cgroup but this process (the client side)."""
    return meter.seconds() - time.process_time()


async def http_sustained_with_rss(
    url: str,
    key: str,
    language: str,
    clients: int,
    seconds: float,
    pid: int | None,
    meter: CpuMeter,
) -> tuple[float, float, float]:
    """Runs per second, the server's peak RSS meanwhile, and the server's CPU per run."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    sampler = asyncio.ensure_future(peak_rss(pid, done)) if pid else None
    cpu, started = others_cpu(meter), time.perf_counter()
    rate = await sustained(url, key, language, clients, seconds)
    runs = rate * (time.perf_counter() - started)
    done.set_result(None)
    return rate, (await sampler) if sampler else 0.0, (others_cpu(meter) - cpu) / max(runs, 1)


async def bare_sustained_cpu(
    python: str, clients: int, seconds: float, meter: CpuMeter
) -> tuple[float, float]:
    cpu, started = others_cpu(meter), time.perf_counter()
    rate = await bare_sustained(python, clients, seconds)
    runs = rate * (time.perf_counter() - started)
    return rate, (others_cpu(meter) - cpu) / max(runs, 1)


def start_distributed(sandbox: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """The API and every role in processes of their own on a tansu broker and PostgreSQL
    (`distributed_bench.py`, which needs the test harness: imported only when chosen)."""
    from distributed_bench import start_distributed as start

    return start(sandbox, data_dir)


Setup = Callable[[str, Path], tuple[subprocess.Popen[Any], str, str]]
SETUPS: dict[str, Setup] = {"embedded": start_server, "distributed": start_distributed}
"""How the platform is brought up for the benchmark. `embedded` is `codeexec serve`: every
role in one process; `distributed`: the API and each role in a process of its own. A setup
returns (its API process, base URL, admin key); every figure is measured on it."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", default=os.environ.get("CODEEXEC_SANDBOX", "local"))
    parser.add_argument("--setup", default="embedded", choices=sorted(SETUPS))
    parser.add_argument("--server")
    parser.add_argument("--key")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--python", help="the bare interpreter to compare with")
    args = parser.parse_args()
    local = args.sandbox != "fake"
    language = "python" if local else "fake"
    prefix = ("" if args.setup == "embedded" else f"{args.setup}_") + ("" if local else "fake_")
    python = bare_python(args.python)
    process = None

    def out(name: str, value: float, unit: str) -> None:
        report(prefix + name, value, unit)

    with tempfile.TemporaryDirectory() as data_dir, CpuMeter() as meter:
        if args.server:
            url, key = args.server, args.key
        else:
            process, url, key = SETUPS[args.setup](args.sandbox, Path(data_dir))
        pid = process.pid if process is not None else None
        try:
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=70
            ) as client:
                open_the_gates(client)
                if pid:
                    time.sleep(1.0)  # start-up done: the pool's first box made
                    out("server_rss_idle", rss_mib(pid), "MiB")
                    out("sandbox_helpers_pss_idle", pss_mib(descendants(pid)), "MiB")
                if local:
                    http, bare = interleaved(client, language, args.runs, python)
                    out("bare_python_p50", percentile(bare, 0.5) * 1000, "ms")
                    out("bare_python_p99", percentile(bare, 0.99) * 1000, "ms")
                else:
                    http = end_to_end(client, language, args.runs)
                out("http_wait_p50", percentile(http, 0.5) * 1000, "ms")
                out("http_wait_p99", percentile(http, 0.99) * 1000, "ms")
                if local:
                    for q, name in ((0.5, "p50"), (0.99, "p99")):
                        ratio = percentile(http, q) / percentile(bare, q)
                        out(f"http_wait_over_bare_{name}", ratio, "x")
                accepts = asyncio.run(accept_latency(url, key, language, args.clients, 10))
                out(f"accept_p50_{args.clients}_clients", percentile(accepts, 0.5) * 1000, "ms")
                out(f"accept_p99_{args.clients}_clients", percentile(accepts, 0.99) * 1000, "ms")
                out("accept_mean", statistics.fmean(accepts) * 1000, "ms")
                drain(client)
                # The same from wrk (C): httpx's own CPU on these cores is in its figures.
                wrk = accept_with_wrk(url, key, args.clients, args.seconds, language)
                if wrk is not None:
                    out(f"accept_wrk_p50_{args.clients}_clients", wrk["p50"], "ms")
                    out(f"accept_wrk_p99_{args.clients}_clients", wrk["p99"], "ms")
                    out(f"accept_wrk_rate_{args.clients}_clients", wrk["rate"], "requests/s")
                    out("accept_wrk_refused", wrk["refused"], "requests")
                drain(client)
                rates: dict[str, list[float]] = {"http": [], "bare": [], "wrk": []}
                cpus: dict[str, list[float]] = {"http": [], "bare": [], "client": []}
                refused = 0.0
                peak = 0.0
                for _ in range(2):  # 8 at a time, interleaved with the bare interpreter
                    client_cpu, started = time.process_time(), time.perf_counter()
                    rate, rss, cpu = asyncio.run(
                        http_sustained_with_rss(url, key, language, 8, args.seconds, pid, meter)
                    )
                    runs = max(rate * (time.perf_counter() - started), 1)
                    cpus["client"].append((time.process_time() - client_cpu) / runs)
                    rates["http"].append(rate)
                    cpus["http"].append(cpu)
                    peak = max(peak, rss)
                    if local:
                        rate, cpu = asyncio.run(bare_sustained_cpu(python, 8, args.seconds, meter))
                        rates["bare"].append(rate)
                        cpus["bare"].append(cpu)
                    # The same 8 waiting clients from wrk (C): httpx's own CPU, on the same
                    # two cores, is in the figure above and not in the bare one.
                    wrk = accept_with_wrk(url, key, 8, args.seconds, language, wait=True)
                    if wrk is not None:
                        rates["wrk"].append(wrk["rate"])
                        refused += wrk["refused"]
                out("http_sustained_8", statistics.median(rates["http"]), "runs/s")
                out("http_client_cpu_per_run", statistics.median(cpus["client"]) * 1000, "ms")
                if rates["wrk"]:
                    out("http_wrk_sustained_8", statistics.median(rates["wrk"]), "runs/s")
                    out("http_wrk_sustained_8_refused", refused, "requests")
                # Server and sandbox CPU per run (not the benchmark's own client), by cgroup.
                out("http_cpu_per_run", statistics.median(cpus["http"]) * 1000, "ms")
                if local:
                    out("bare_python_sustained_8", statistics.median(rates["bare"]), "runs/s")
                    out("bare_python_cpu_per_run", statistics.median(cpus["bare"]) * 1000, "ms")
                    ratio = statistics.median(rates["http"]) / statistics.median(rates["bare"])
                    out("http_sustained_8_over_bare", ratio, "x")
                    if rates["wrk"]:
                        ratio = statistics.median(rates["wrk"]) / statistics.median(rates["bare"])
                        out("http_wrk_sustained_8_over_bare", ratio, "x")
                if pid:
                    out("server_rss_8_running", peak, "MiB")
                    time.sleep(1.5)  # the pool refilled to the demand just seen
                    helpers = descendants(pid)
                    out("server_rss_pool_full", rss_mib(pid), "MiB")
                    out("sandbox_helpers_pss_pool_full", pss_mib(helpers), "MiB")
                    out("sandbox_processes_pool_full", len(helpers), "processes")
                rate = asyncio.run(sustained(url, key, language, args.clients, args.seconds))
                out("sustained_executions", rate, "per_s")
        finally:
            if process is not None:
                process.terminate()
                process.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
