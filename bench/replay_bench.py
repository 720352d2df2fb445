"""Replay throughput: stored events from the SQLite store into the in-memory bus, events/s.

Fills a store with N executions' events, then replays all of them to a scratch topic and
reads them back; prints `bench: NAME VALUE UNIT` lines."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from codeexec import CoordinatorConfig, RunSpec, Settings, SourceFile, UserLimits
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.domain.operations_events import ReplayFilter
from codeexec.domain.replay import ReplayState
from codeexec.domain.routing import REPLAY_SCRATCH
from codeexec.runtime import Codeexec

SPEC = RunSpec(language="fake", files=(SourceFile(name="main", content=b"out hello"),))


async def replay(n: int, batch: int, data_dir: Path) -> tuple[int, float, float]:
    limits = UserLimits(rate_limit=10**9, max_running=256, max_queued=n)
    settings = Settings(
        data_dir=data_dir,
        coordinator=CoordinatorConfig(max_running=256, max_queue=n, default_user_limits=limits),
    )
    bus = InMemoryEventBus()
    async with Codeexec(settings, sandbox=FakeSandbox(), bus=bus) as cx:
        ids = [(await cx.submit(f"u{i % 8}", SPEC)).id for i in range(n)]
        for execution_id in ids:
            await cx.wait(execution_id, timeout=600)
        reader = await bus.subscribe("bench-reader", [REPLAY_SCRATCH])
        started, cpu = time.perf_counter(), time.process_time()
        session = cx.replays.create("bench", ReplayFilter(), REPLAY_SCRATCH, batch_size=batch)
        while cx.replays.get(session.id).state is not ReplayState.COMPLETED:
            await asyncio.sleep(0.005)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        sent = cx.replays.get(session.id).sent
        received = len(await reader.poll(10**7, timeout=0))
        assert received == sent, (received, sent)
        return sent, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=3000, help="executions to store first")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sent, elapsed, cpu = asyncio.run(replay(args.n, args.batch, Path(tmp)))
    print(f"bench: replay_sqlite_to_memory_events {sent / elapsed:.0f} events/s")
    print(f"bench: replay_sqlite_to_memory_cpu_per_event {cpu / sent * 1e6:.1f} us")
    print(f"bench: replay_sqlite_to_memory_replayed {sent} events")


if __name__ == "__main__":
    main()
