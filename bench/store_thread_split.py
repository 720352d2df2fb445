"""Where the store thread's CPU goes in the core bench: the shadow, the log writes, the
read model's projector, per execution.

Runs `core_bench.push` once (`--mode` memory or sqlite) with a few store-thread calls
wrapped to sum their thread CPU time; prints `bench: NAME VALUE UNIT` lines. Run it on two
checkouts side by side with PYTHONPATH=<checkout>/src (as bench/ab_checkouts.sh does)."""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import core_bench

from codeexec.adapters.sql_read_model import SqlExecutionReadModel
from codeexec.service.snapshots import Shadow
from codeexec.service.store import ExecutionStore
from codeexec.service.store_thread import StoreThread

spent: collections.Counter[str] = collections.Counter()


def timed(cls: type, method: str, name: str) -> None:
    inner: Callable[..., Any] = getattr(cls, method)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()  # this thread's CPU only: the store thread's
        try:
            return inner(*args, **kwargs)
        finally:
            spent[name] += time.thread_time() - started

    setattr(cls, method, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--mode", default="sqlite", choices=("memory", "sqlite"))
    args = parser.parse_args()
    timed(Shadow, "advance", "shadow_advance")
    timed(ExecutionStore, "record", "store_record")
    timed(SqlExecutionReadModel, "apply_batch", "read_model_apply_batch")
    timed(StoreThread, "_serve", "all")
    with core_bench.settings_for(args.mode, args.n) as settings:
        _, cpu, _, _ = asyncio.run(core_bench.push(settings, args.n))
    print(f"bench: split_{args.mode}_cpu_per_execution {cpu / args.n * 1000:.3f} ms")
    for name in ("all", "shadow_advance", "store_record", "read_model_apply_batch"):
        value = spent[name] / args.n * 1000
        print(f"bench: split_{args.mode}_store_thread_{name}_per_execution {value:.3f} ms")


if __name__ == "__main__":
    main()
