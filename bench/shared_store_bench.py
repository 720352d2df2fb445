"""Shared-store benchmark: the persisted read model and the live feed, beside their baselines.

Read model (in memory = the baseline, SQLite file, PostgreSQL on 127.0.0.1:5432 in a
database made for the run and dropped after): how fast a projection folds batches in (each
with its tracking, as the projections role writes them), and what the API's queries cost on
a table of N executions: a user's newest page, the same filtered by status, the admin
listing, counts(). Live feed: how long an event published on the bus takes to wake a
follower in another "process" (bus tail), against what one store poll costs on PostgreSQL
(what the alternative would pay per poll, per API process, even when nothing happens).

    python bench/shared_store_bench.py [--executions 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from eventsourcing.persistence import Tracking
from psycopg import sql

from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.adapters.memory_read_model import InMemoryExecutionReadModel
from codeexec.adapters.postgres_read_model import PostgresExecutionReadModel
from codeexec.adapters.sql_database import PostgresParams
from codeexec.adapters.sqlite_read_model import SQLiteExecutionReadModel
from codeexec.domain.routing import EXECUTION_EVENTS, TOPICS
from codeexec.ports.bus import Message
from codeexec.ports.read_model import ExecutionQuery, ExecutionReadModel
from codeexec.service.live_feed import LiveFeed
from codeexec.service.projections import ExecutionFeed
from codeexec.service.store import ExecutionStore
from codeexec.service.store_config import store_config
from codeexec.testing.postgres import server_params
from codeexec.testing.read_model import Story


def report(name: str, value: float, unit: str) -> None:
    print(f"bench: {name} {value:.3g} {unit}", flush=True)


def median_ms(fn: Callable[[], object], runs: int = 50) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_read_model(name: str, model: ExecutionReadModel, story: Story, batch: int) -> None:
    events = story.events
    start = time.perf_counter()
    for at in range(0, len(events), batch):
        chunk = events[at : at + batch]
        model.apply_batch(chunk, Tracking("projections/execution_events/0", chunk[-1][0]))
    elapsed = time.perf_counter() - start
    report(f"read_model_fold_{name}", len(events) / elapsed, "events/s")
    page = model.list(ExecutionQuery(user_id="u7", limit=50))
    queries = {
        "user_page": lambda: model.list(ExecutionQuery(user_id="u7", limit=50)),
        "user_page_2": lambda: model.list(
            ExecutionQuery(user_id="u7", cursor=page.next_cursor, limit=50)
        ),
        "user_status_page": lambda: model.list(
            ExecutionQuery(user_id="u7", statuses=frozenset({"succeeded"}), limit=50)
        ),
        "admin_page": lambda: model.list(ExecutionQuery(limit=50)),
        "counts": model.counts,
    }
    for query, fn in queries.items():
        report(f"read_model_{query}_{name}", median_ms(fn), "ms")


async def feed_latency(samples: int = 200) -> list[float]:
    bus = InMemoryEventBus()
    await bus.declare(list(TOPICS.values()))
    feed = ExecutionFeed()
    live = LiveFeed(bus, feed)
    task = asyncio.create_task(live.run())
    await live.ready.wait()
    latencies = []
    for _ in range(samples):
        execution_id = uuid.uuid4()
        signal = feed.watch(execution_id)
        start = time.perf_counter()
        await bus.publish([Message(EXECUTION_EVENTS, str(execution_id), b"{}")])
        await signal.wait()
        latencies.append((time.perf_counter() - start) * 1000)
        feed.unwatch(execution_id, signal)
    live.stop()
    await task
    return sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    story = Story()
    for n in range(args.executions):
        story.record(story.finished(f"u{n % 50}", n))
    report("read_model_table_executions", args.executions, "executions")

    bench_read_model("memory", InMemoryExecutionReadModel(), story, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteExecutionReadModel(Path(tmp) / "views.sqlite3")
        bench_read_model("sqlite", sqlite, story, args.batch)
        sqlite.close()

    dbname = f"codeexec_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_params().conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        params: PostgresParams = server_params(dbname)
        postgres = PostgresExecutionReadModel(params)
        bench_read_model("postgres", postgres, story, args.batch)
        postgres.close()
        store = ExecutionStore(store_config("postgres", environ=params.env()).env)
        report("store_poll_postgres", median_ms(store.max_position, 200), "ms")
        store.close()
    finally:
        with psycopg.connect(server_params().conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )

    latencies = asyncio.run(feed_latency())
    report("live_feed_wake_p50_memory_bus", statistics.median(latencies), "ms")
    report("live_feed_wake_p99_memory_bus", latencies[int(len(latencies) * 0.99) - 1], "ms")


if __name__ == "__main__":
    main()
