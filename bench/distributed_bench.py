"""Distributed benchmark: the API and every role in OS processes of their own on a tansu broker
and PostgreSQL, side by side with the embedded `codeexec serve`, both with the fake sandbox
(the platform alone: no code runs), measured in one run.

Prints `bench: <setup>_fake_<NAME> VALUE UNIT` for setup `embedded` and `distributed`:

    accept_p50_32_clients / accept_p99_32_clients (ms): POST without wait until 202,
        32 clients at once, 20 requests each
    accept_refused (requests): of those 640, answered other than 202 (503: store busy)
    accept_wrk_p50_32_clients / accept_wrk_p99_32_clients (ms), accept_wrk_rate_32_clients
        (requests/s), accept_wrk_refused: the same POST from wrk, 32 connections for 5 s,
        when wrk is installed: a load generator in C, whose own CPU does not inflate the
        figure (httpx's does: on 2 cores its p99 read 2.5 s where wrk's read 0.37 s)
    throughput (executions/s): N executions submitted by 32 clients at once, from the
        first POST until the read model shows none in flight (every one ended)
    accepted_rate (executions/s): the same N, submission alone
    sustained_wait_32 (executions/s): 32 clients each looping POST ?wait=true
    rejected (executions): of the N, refused by the coordinator (0 unless the limits set
        through the API did not reach it)

Setups: `embedded` (`codeexec serve`), `distributed` (the API and each role in a process
of its own), with `--grouped` also `distributed_grouped` (the API, one process of all
roles but the worker, the workers), and with `--variant` the distributed setup with other
settings; `--rounds` alternates them, so each sees the same machine load.

    cpu_ms_per_execution_<PROCESS> (ms): CPU time each OS process used during the
        throughput run (API, each role, the broker, PostgreSQL's server processes summed),
        divided by N: where the cores go. `total` is their sum.
    pg_lock_waiting / pg_idle_in_transaction (backends): on PostgreSQL, the cluster's
        backends waiting for a lock (a writer queued for the events table's) and idle in
        a transaction (a process working between its statements, holding what it took),
        sampled every 50 ms during the throughput run, on average; pg_lock_waiting_max the
        most seen at once.

`--profile DIR` runs every distributed process under yappi's CPU clock, every thread
(`pip install yappi`; slower: use it to see where the time goes, not to measure it), stops
them after the throughput run and prints each one's heaviest functions as `profile:` lines;
the .prof files stay in DIR. (py-spy cannot read other processes' memory in these
sandboxes, and cProfile sees only the main thread.)

    python bench/distributed_bench.py [--executions 3000] [--workers 1] [--profile DIR]
        [--store postgres|mongo]  (mongo: the setup is named distributed_mongo)
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' cluster harness

from http_bench import (
    percentile,
    report,
    start_server,
    sustained,
)
from wrk_accept import accept_with_wrk

from tests.system.cluster import Cluster

CLIENTS = 32
RUNNING = 64
"""Runs at once: a fake run holds its slot for the hops between roles (through Kafka, tens
of milliseconds), so the default 8 would measure the cap, not the platform."""
IN_FLIGHT = ("requested", "queued", "scheduled", "running")


def distributed(
    sandbox: str,
    root: Path,
    workers: int = 1,
    profile: Path | None = None,
    env: dict[str, str] | None = None,
    grouped: bool = False,
    store: str = "postgres",
) -> Cluster:
    """The API, coordinator, saga, projections, relay, `workers` workers and the operators'
    roles (dead letters, replay), each an OS process, started and ready; `env` is added to
    every process's environment. `grouped`: every role but the workers in one process
    (`codeexec role coordinator saga ...`), so three processes in all with one worker.
    `store`: the shared store, postgres or mongo (an nx-27017 test server)."""
    cluster = Cluster(root, sandbox=sandbox, extra_env=env, store=store)
    cluster.__enter__()
    try:
        cluster.add_api("api")
        if grouped:
            control = ["coordinator", "saga", "projections", "relay", "dead-letters", "replay"]
            cluster.add_role("control", control)
        else:
            for role in ("coordinator", "saga", "projections", "relay"):
                cluster.add_role(role, [role])
            cluster.add_role("operators", ["dead-letters", "replay"])
        for n in range(1, workers + 1):
            cluster.add_role(f"worker-{n}", ["worker"], {"CODEEXEC_WORKER_ID": f"worker-{n}"})
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            for node in cluster.nodes.values():
                out = str(profile.resolve() / f"{node.name}.prof")
                node.argv[1:1] = [str(Path(__file__).with_name("profiled.py")), out]
        cluster.start()
    except BaseException:
        print(cluster.logs(), file=sys.stderr)
        cluster.close()
        raise
    return cluster


def start_distributed(sandbox: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """For `http_bench.py --setup distributed`: the cluster is closed when Python exits."""
    cluster = distributed(sandbox, data_dir / "cluster")
    atexit.register(cluster.close)
    api = cluster.nodes["api"].process
    assert api is not None
    return api, cluster.url(), cluster.create_key(admin=True)


async def accept_latency(
    url: str, key: str, clients: int, each: int
) -> tuple[list[float], Counter[int]]:
    """POST without wait, `clients` at once, `each` in turn: every answer's time (202 or
    not: a 503 is a refused accept, counted apart) and the count of each status code."""
    samples: list[float] = []
    codes: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients)
    body = {"language": "fake", "source": "out Hello"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as http:

        async def client() -> None:
            for _ in range(each):
                started = time.perf_counter()
                try:
                    code = (await http.post("/api/v1/executions", json=body)).status_code
                except httpx.TransportError:
                    code = 0  # the connection dropped: counted with the refused
                samples.append(time.perf_counter() - started)
                codes[code] += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return samples, codes


async def throughput(url: str, key: str, n: int) -> tuple[float, float, int]:
    """(executions/s to the end, accepted/s, rejected): n submitted by CLIENTS at once."""
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=CLIENTS)
    body = {"language": "fake", "source": "out Hello"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as http:
        todo = iter(range(n))

        async def client() -> None:
            for _ in todo:
                # A busy store (503) or a dropped connection is retried, as clients do,
                # with the same Idempotency-Key: a retried accept is never recorded twice.
                retry = {"Idempotency-Key": uuid.uuid4().hex}
                while True:
                    try:
                        response = await http.post("/api/v1/executions", json=body, headers=retry)
                    except httpx.TransportError:
                        continue
                    if response.status_code != 503:
                        break
                    await asyncio.sleep(0.05)
                assert response.status_code in (200, 202), response.text

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        accepted = time.perf_counter() - started
        await drained(http)
        ended = time.perf_counter() - started
        rejected = await count(http, "rejected")
    return n / ended, n / accepted, rejected


async def drained(http: httpx.AsyncClient) -> None:
    """Until the read model shows no execution in flight (every one ended)."""
    in_flight = {"user": "*", "limit": "1", "status": list(IN_FLIGHT)}
    while (await http.get("/api/v1/executions", params=in_flight)).json()["items"]:
        await asyncio.sleep(0.05)


async def backlog_done(url: str, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        await drained(http)


async def count(http: httpx.AsyncClient, status: str) -> int:
    found, cursor = 0, None
    while True:
        params = {"user": "*", "limit": "100", "status": status}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/api/v1/executions", params=params)).json()
        found += len(page["items"])
        if (cursor := page["next_cursor"]) is None:
            return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_table(cluster: Cluster | None) -> dict[str, list[int]]:
    """Which pids make up each part of the setup: its nodes, the broker, PostgreSQL's
    server processes (all of them: the server is shared, but nothing else runs here)."""
    if cluster is None:
        return {}
    parts = {name: [node.pid] for name, node in cluster.nodes.items()}
    broker = getattr(cluster.broker, "process", None)
    if broker is not None:
        parts["broker"] = [broker.pid]
    postgres = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    postgres.append(int(entry.name))
            except OSError:
                continue
    parts["postgresql"] = postgres
    if cluster.mongo is not None and cluster.mongo.process is not None:
        parts["mongo"] = [cluster.mongo.process.pid]
    return parts


def cpu_by_part(parts: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in parts.items()}


class LockSampler:
    """Samples pg_stat_activity for the cluster's database every `every_s` in a thread of
    its own: how many backends wait for a lock, how many are idle in a transaction."""

    QUERY = (
        "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'),"
        " count(*) FILTER (WHERE state = 'idle in transaction')"
        " FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    )

    def __init__(self, cluster: Cluster | None, every_s: float = 0.05) -> None:
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if cluster is not None and cluster.store == "postgres":
            conninfo, dbname = cluster.postgres.conninfo(), cluster.postgres.dbname
            self._thread = threading.Thread(
                target=self._run, args=(conninfo, dbname, every_s), daemon=True
            )
            self._thread.start()

    def _run(self, conninfo: str, dbname: str, every_s: float) -> None:
        import psycopg

        with psycopg.connect(conninfo, autocommit=True) as connection:
            while not self._stop.wait(every_s):
                row = connection.execute(self.QUERY, (dbname,)).fetchone()
                assert row is not None
                self.samples.append((int(row[0]), int(row[1])))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._thread is None:
            return {}
        self._thread.join(5)
        if not self.samples:
            return {}
        waiting = [w for w, _ in self.samples]
        idle = [i for _, i in self.samples]
        return {
            "pg_lock_waiting": sum(waiting) / len(waiting),
            "pg_lock_waiting_max": max(waiting),
            "pg_idle_in_transaction": sum(idle) / len(idle),
        }


def open_the_gates(client: httpx.Client) -> None:
    """No rate limit, room in the queue and RUNNING runs at once, for every user (the
    storage quota's window stays as it is: admission reads it on every submission)."""
    limits = client.get("/api/v1/admin/limits").json()
    limits.update(max_queue=100_000, max_running=RUNNING)
    limits["default_user_limits"].update(
        rate_limit=10_000_000, rate_window_s=1.0, max_running=RUNNING, max_queued=100_000
    )
    client.put("/api/v1/admin/limits", json=limits).raise_for_status()
    # The change is an event the coordinator consumes from its own partition: submissions
    # it sees first, from other partitions, meet the old limits (a queue of 100 per user:
    # `rejected` counted 5 once). Give it a moment to arrive.
    time.sleep(1.0)


def measure(setup: str, url: str, key: str, n: int, cluster: Cluster | None = None) -> None:
    def out(name: str, value: float, unit: str) -> None:
        report(f"{setup}_fake_{name}", value, unit)

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        open_the_gates(client)
    asyncio.run(accept_latency(url, key, CLIENTS, 3))  # warm: connections, groups
    accepts, codes = asyncio.run(accept_latency(url, key, CLIENTS, 20))
    out(f"accept_p50_{CLIENTS}_clients", percentile(accepts, 0.5) * 1000, "ms")
    out(f"accept_p99_{CLIENTS}_clients", percentile(accepts, 0.99) * 1000, "ms")
    out("accept_refused", sum(n for code, n in codes.items() if code != 202), "requests")
    wrk = accept_with_wrk(url, key, CLIENTS, 5.0)
    if wrk is not None:
        out(f"accept_wrk_p50_{CLIENTS}_clients", wrk["p50"], "ms")
        out(f"accept_wrk_p99_{CLIENTS}_clients", wrk["p99"], "ms")
        out(f"accept_wrk_rate_{CLIENTS}_clients", wrk["rate"], "requests/s")
        out("accept_wrk_refused", wrk["refused"], "requests")
    # The accepts above left work behind (wrk's 5 s: a thousand executions or more): the
    # throughput run starts once it is done, or it would count that backlog as its own.
    asyncio.run(backlog_done(url, key))
    parts = process_table(cluster)
    before = cpu_by_part(parts)
    sampler = LockSampler(cluster)
    rate, accepted, rejected = asyncio.run(throughput(url, key, n))
    after = cpu_by_part(parts)
    locks = sampler.stop()
    out("throughput", rate, "executions/s")
    for name, value in locks.items():
        out(name, value, "backends")
    if parts:
        used = {name: (after[name] - before[name]) * 1000 / n for name in parts}
        for name, ms in sorted(used.items(), key=lambda item: -item[1]):
            out(f"cpu_ms_per_execution_{name}", ms, "ms")
        out("cpu_ms_per_execution_total", sum(used.values()), "ms")
    out("accepted_rate", accepted, "executions/s")
    out("rejected", rejected, "executions")
    rate = asyncio.run(sustained(url, key, "fake", CLIENTS, 5.0))
    out(f"sustained_wait_{CLIENTS}", rate, "executions/s")


def print_profiles(cluster: Cluster, out_dir: Path, top: int = 12) -> None:
    """Stop every node (SIGTERM: the profiler writes its file on the way out) and print
    each one's functions by own CPU time, then codeexec's own functions by inclusive time."""
    for node in reversed(cluster.nodes.values()):
        node.stop(60)
    for node in cluster.nodes.values():
        path = out_dir / f"{node.name}.prof"
        if not path.exists():
            print(f"profile: {node.name}: no profile written ({path})")
            continue
        stats = pstats.Stats(str(path))
        rows = stats.stats.items()  # type: ignore[attr-defined]
        total = sum(own for _, (_, _, own, _, _) in rows) or 1.0
        print(f"profile: {node.name}: {total:.1f} s of CPU -> {path}")
        by_own = sorted(rows, key=lambda item: -item[1][2])[:top]
        ours = [r for r in rows if "/codeexec" in r[0][0] and "/site-packages/" not in r[0][0]]
        by_inclusive = sorted(ours, key=lambda item: -item[1][3])[:top]
        for kind, chosen in (("own", by_own), ("incl", by_inclusive)):
            for (file, line, function), (_, calls, own, inclusive, _) in chosen:
                spent = own if kind == "own" else inclusive
                where = f"{Path(file).name}:{line}({function})"
                print(
                    f"profile: {node.name}: {kind:4} {100 * spent / total:5.1f}%"
                    f" calls {calls:>8} {where}"
                )


def variant(text: str) -> tuple[str, dict[str, str]]:
    """`LABEL:NAME=VALUE[,NAME=VALUE...]` (a setting to compare with the defaults)."""
    label, _, assignments = text.partition(":")
    env = dict(pair.split("=", 1) for pair in assignments.split(",") if pair)
    if not label.isidentifier() or not env:
        raise argparse.ArgumentTypeError(f"expected LABEL:NAME=VALUE[,...], not {text!r}")
    return label, env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="profile each distributed process into DIR")
    parser.add_argument("--only", choices=("embedded", "distributed"))
    parser.add_argument(
        "--variant",
        type=variant,
        action="append",
        default=[],
        help="LABEL:NAME=VALUE[,...]: also run the distributed setup with these variables,"
        " alternating with the defaults round by round (`distributed_LABEL_...` lines)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every setup")
    parser.add_argument(
        "--grouped",
        action="store_true",
        help="also the API, one process of every role but the worker, and the workers"
        " (`distributed_grouped_...` lines)",
    )
    parser.add_argument(
        "--store",
        choices=("postgres", "mongo"),
        default="postgres",
        help="the distributed setup's shared store (mongo: an nx-27017 test server)",
    )
    args = parser.parse_args()
    setups: list[tuple[str, dict[str, str]]] = [("embedded", {}), ("distributed", {})]
    if args.grouped:
        setups.append(("distributed_grouped", {}))
    setups += [(f"distributed_{label}", env) for label, env in args.variant]
    for _ in range(args.rounds):
        for setup, env in setups:
            if args.only not in (None, setup.split("_")[0]):
                continue
            run_setup(setup, env, args)
    return 0


def run_setup(setup: str, env: dict[str, str], args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        if setup == "embedded":
            process, url, key = start_server("fake", Path(data_dir))
            try:
                measure(setup, url, key, args.executions)
            finally:
                process.terminate()
                process.wait(20)
            return
        grouped = setup == "distributed_grouped"
        cluster = distributed(
            "fake", Path(data_dir), args.workers, args.profile, env, grouped, args.store
        )
        name = (
            setup
            if args.store == "postgres"
            else setup.replace("distributed", f"distributed_{args.store}", 1)
        )
        try:
            url, key = cluster.url(), cluster.create_key(admin=True)
            measure(name, url, key, args.executions, cluster)
            if args.profile:
                print_profiles(cluster, args.profile)
        finally:
            cluster.close()


if __name__ == "__main__":
    sys.exit(main())
