"""Core throughput: N executions through every role with the fake sandbox, memory vs SQLite.

Prints `bench: NAME VALUE UNIT` lines; `--profile` adds where the time goes (cProfile)."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

from codeexec import CoordinatorConfig, RunSpec, Settings, SourceFile, UserLimits
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.runtime import Codeexec

SPEC = RunSpec(language="fake", files=(SourceFile(name="main", content=b"out hello"),))
USERS = [f"user{n}" for n in range(16)]


def config(n: int) -> CoordinatorConfig:
    limits = UserLimits(rate_limit=10**9, max_running=64, max_queued=n)
    return CoordinatorConfig(max_running=256, max_queue=n, default_user_limits=limits)


async def push(n: int, data_dir: Path | None) -> tuple[float, float, int]:
    settings = Settings(data_dir=data_dir, coordinator=config(n))
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
        return elapsed, cpu, cx.store.max_position()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    for name in ("memory", "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp) if name == "sqlite" else None
            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            elapsed, cpu, events = asyncio.run(push(args.n, data_dir))
            if profiler:
                profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
                print(out.getvalue())
        print(f"bench: core_{name}_executions {args.n / elapsed:.0f} exec/s")
        print(f"bench: core_{name}_events {events / elapsed:.0f} events/s")
        print(f"bench: core_{name}_events_per_execution {events / args.n:.1f} events")
        # CPU time is steadier than wall time on a shared machine.
        print(f"bench: core_{name}_cpu_per_execution {cpu / args.n * 1000:.3f} ms")


if __name__ == "__main__":
    main()
