"""Group commit over HTTP: `codeexec serve` with and without it, side by side in one run.

Two servers (fake sandbox, SQLite store) run at once: one as shipped (`group_`), one with
CODEEXEC_STORE_TURN_CALLS=1 (`no_group_`: a transaction per store call). Their phases
alternate over `--rounds`, so both see the same load: accept latency (POST until 202, N
clients), runs/s with 8 and with N clients (`?wait=true`), and the server's CPU per
execution over the whole run. `--baseline PYTHON` adds a third server run by another
checkout's interpreter (`baseline_`: say, main's, for before and after in one run).
Prints `bench: NAME VALUE UNIT` lines (medians over rounds; latency percentiles over
every sample).

    python bench/store_turn_bench.py [--rounds 3] [--clients 32] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from http_bench import body, drain, open_the_gates, percentile, report, sustained

VARIANTS = {"group": {}, "no_group": {"CODEEXEC_STORE_TURN_CALLS": "1"}}


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def accept_latency(
    url: str, key: str, clients: int, each: int
) -> tuple[list[float], list[str]]:
    """POST until 202 from `clients` at once: latencies, and what failed (a bench reports
    failures rather than stop at the first)."""
    samples: list[float] = []
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as http:

        async def client() -> None:
            for _ in range(each):
                started = time.perf_counter()
                try:
                    response = await http.post("/api/v1/executions", json=body("fake"))
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                    continue
                samples.append(time.perf_counter() - started)
                if response.status_code != 202:
                    failures.append(f"{response.status_code} {response.text[:80]}")

        await asyncio.gather(*(client() for _ in range(clients)))
    return samples, failures


def main() -> int:
    from http_bench import start_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--each", type=int, default=10, help="submissions per client")
    parser.add_argument("--baseline", help="the interpreter of another checkout to compare")
    args = parser.parse_args()
    variants: dict[str, tuple[dict[str, str], str | None]] = {
        name: (env, None) for name, env in VARIANTS.items()
    }
    if args.baseline:
        variants["baseline"] = ({}, args.baseline)
    accepts: dict[str, list[float]] = {v: [] for v in variants}
    rates: dict[str, dict[int, list[float]]] = {v: {8: [], args.clients: []} for v in variants}
    executions = dict.fromkeys(variants, 0.0)
    cpu = dict.fromkeys(variants, 0.0)
    failures: dict[str, list[str]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {}
        try:
            for name, (env, python) in variants.items():
                (Path(tmp) / name).mkdir()
                servers[name] = start_server("fake", Path(tmp) / name, env, python)
            for _, url, key in servers.values():
                with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
                    open_the_gates(c)
            for _ in range(args.rounds):
                for name, (process, url, key) in servers.items():
                    before = cpu_s(process.pid)
                    samples, failed = asyncio.run(accept_latency(url, key, args.clients, args.each))
                    accepts[name] += samples
                    failures[name] += failed
                    if failed:
                        print(name, "failures:", failed[:3], "server exit:", process.poll())
                    with httpx.Client(
                        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
                    ) as client:
                        drain(client)
                    executions[name] += len(samples)
                    for clients in (8, args.clients):
                        rate = asyncio.run(sustained(url, key, "fake", clients, args.seconds))
                        rates[name][clients].append(rate)
                        executions[name] += rate * args.seconds
                    cpu[name] += cpu_s(process.pid) - before
        finally:
            for process, _, _ in servers.values():
                process.terminate()
                process.wait(10)
    for name in variants:
        samples = accepts[name]
        report(f"{name}_accept_p50_{args.clients}_clients", percentile(samples, 0.5) * 1000, "ms")
        report(f"{name}_accept_p99_{args.clients}_clients", percentile(samples, 0.99) * 1000, "ms")
        for clients, values in rates[name].items():
            report(f"{name}_fake_sustained_{clients}", statistics.median(values), "runs/s")
        report(f"{name}_server_cpu_per_execution", cpu[name] / executions[name] * 1000, "ms")
        report(f"{name}_accept_failures", len(failures[name]), "requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
