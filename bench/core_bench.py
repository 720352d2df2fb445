"""Core throughput: N executions through every role with the fake sandbox, memory vs SQLite.

Each store runs with group commit (`core_sqlite_*`) and without (`core_sqlite_no_group_*`,
CODEEXEC_STORE_TURN_CALLS=1: a transaction per store call), interleaved in rounds: SQLite as
`codeexec serve` keeps it (synchronous=normal: no fsync per commit), SQLite syncing every
commit (`sqlite_full`), and PostgreSQL (127.0.0.1:5432, a fresh database per run). Prints
`bench: NAME VALUE UNIT` lines (the median over `--rounds`); `--profile` adds where the
event loop's time goes (cProfile)."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from codeexec import CoordinatorConfig, RunSpec, Settings, SourceFile, UserLimits
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.runtime import Codeexec
from codeexec.service.store_thread import TURN_CALLS

SPEC = RunSpec(language="fake", files=(SourceFile(name="main", content=b"out hello"),))
USERS = [f"user{n}" for n in range(16)]


def config(n: int) -> CoordinatorConfig:
    limits = UserLimits(rate_limit=10**9, max_running=64, max_queued=n)
    return CoordinatorConfig(max_running=256, max_queue=n, default_user_limits=limits)


MODES = ["memory", "sqlite", "sqlite_no_group", "sqlite_full", "sqlite_full_no_group"]
MODES += ["postgres", "postgres_no_group"]


@contextmanager
def settings_for(mode: str, n: int) -> Iterator[Settings]:
    """The runtime's settings for `mode`, with a fresh store; the turn setting exported."""
    if mode.endswith("_no_group"):
        os.environ[TURN_CALLS] = "1"
    else:
        os.environ.pop(TURN_CALLS, None)
    if mode == "memory":
        yield Settings(coordinator=config(n))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if not mode.startswith("postgres"):
            synchronous = "full" if mode.startswith("sqlite_full") else "normal"
            yield Settings(
                data_dir=Path(tmp), coordinator=config(n), sqlite_synchronous=synchronous
            )
            return
        import psycopg

        name = f"core_bench_{os.getpid()}_{mode}"
        admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        saved = dict(os.environ)
        os.environ.update(POSTGRES_DBNAME=name, POSTGRES_HOST="127.0.0.1", POSTGRES_PORT="5432")
        os.environ.update(POSTGRES_USER="postgres", POSTGRES_PASSWORD="")
        try:
            yield Settings(data_dir=Path(tmp), coordinator=config(n), store="postgres")
        finally:
            os.environ.clear()
            os.environ.update(saved)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def push(settings: Settings, n: int) -> tuple[float, float, int, float]:
    async with Codeexec(settings, sandbox=FakeSandbox()) as cx:
        started, cpu_started = time.perf_counter(), time.process_time()
        ids = []
        for i in range(n):
            ids.append((await cx.submit(USERS[i % len(USERS)], SPEC)).id)
            if i % 256 == 255:
                await asyncio.sleep(0)  # let the roles run, as concurrent clients would
        for execution_id in ids:
            view = await cx.wait(execution_id, timeout=600)
            assert view.status == "succeeded", view
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        assert cx.store is not None
        io = getattr(cx, "_io", None)  # the store thread: how many calls a turn took
        per_turn = io.turned_calls / max(io.turns, 1) if io is not None else 0.0
        return elapsed, cpu, cx.store.max_position(), per_turn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", default=",".join(MODES), help=", ".join(MODES))
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    modes = args.modes.split(",")
    runs: dict[str, list[tuple[float, float, int, float]]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for name in modes:  # interleaved: each mode sees the same load over the rounds
            with settings_for(name, args.n) as settings:
                profiler = cProfile.Profile() if args.profile else None
                if profiler:
                    profiler.enable()
                runs[name].append(asyncio.run(push(settings, args.n)))
                if profiler:
                    profiler.disable()
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
                    print(name, out.getvalue())
    os.environ.pop(TURN_CALLS, None)
    for name in modes:
        elapsed = statistics.median(r[0] for r in runs[name])
        cpu = statistics.median(r[1] for r in runs[name])
        events = runs[name][0][2]
        print(f"bench: core_{name}_executions {args.n / elapsed:.0f} exec/s")
        print(f"bench: core_{name}_events {events / elapsed:.0f} events/s")
        print(f"bench: core_{name}_events_per_execution {events / args.n:.1f} events")
        # CPU time is steadier than wall time on a shared machine.
        print(f"bench: core_{name}_cpu_per_execution {cpu / args.n * 1000:.3f} ms")
        if name != "memory":
            per_turn = statistics.median(r[3] for r in runs[name])
            print(f"bench: core_{name}_calls_per_store_turn {per_turn:.1f} calls")


if __name__ == "__main__":
    main()
