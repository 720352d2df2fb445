"""Dashboard benchmark: what the operators' dashboard costs the read models and the API.

The page asks every 2 s for executions per status (`status_counts`, a GROUP BY on the
read model's (status, seq) index) and per state (`counts`, a table of running totals), and
for the queue history (a ring of samples each API process keeps). This measures, with N
finished executions in each read model (memory, SQLite file, PostgreSQL on a fresh
database dropped afterwards), the median of 30 calls of each count, and the size and
encoding time of a full ring of queue samples (10 minutes at 1 s, five consumer groups).
Prints

    bench: status_counts_{memory,sqlite,postgres}_{N} T us
    bench: state_counts_{memory,sqlite,postgres}_{N} T us
    bench: queue_history_full_ring_json BYTES bytes
    bench: queue_history_full_ring_encode T us

    python bench/dashboard_bench.py [--n 20000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from codeexec_server.queue_history import QueueHistory, QueueSample
from codeexec_server.schemas_dashboard import QueueHistoryOut

from codeexec.adapters.memory_read_model import InMemoryExecutionReadModel
from codeexec.adapters.postgres_read_model import PostgresExecutionReadModel
from codeexec.adapters.sqlite_read_model import SQLiteExecutionReadModel
from codeexec.ports.read_model import ExecutionReadModel
from codeexec.testing.postgres import server_params
from codeexec.testing.read_model import Story


def report(name: str, value: float, unit: str) -> None:
    print(f"bench: {name} {value:.0f} {unit}", flush=True)


def median_us(call: Callable[[], object], n: int = 30) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def fill(model: ExecutionReadModel, n: int) -> None:
    story = Story()
    for start in range(0, n, 500):
        executions = [story.finished(f"user{i % 50}", i) for i in range(start, start + 500)]
        model.apply_batch(story.record(*executions))


def measure(name: str, model: ExecutionReadModel, n: int) -> None:
    fill(model, n)
    assert sum(model.status_counts().values()) == n
    report(f"status_counts_{name}_{n}", median_us(model.status_counts), "us")
    report(f"state_counts_{name}_{n}", median_us(model.counts), "us")


def admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(server_params().conninfo(), autocommit=True) as conn:
        conn.execute(statement)


def full_ring() -> None:
    history = QueueHistory(interval_s=1.0, window_s=600.0)
    lag = {g: 0 for g in ("coordinator", "dead-letter-manager", "projections", "saga", "worker")}
    t0 = datetime.now(UTC)
    for i in range(history.capacity + 100):  # more than it holds: the ring drops the oldest
        history.samples.append(QueueSample(t0 + timedelta(seconds=i), i % 40, i % 8, lag))
    samples = list(history.samples)
    encode = lambda: QueueHistoryOut.of(history, samples, 1000, 8).model_dump_json()  # noqa: E731
    report("queue_history_full_ring_json", len(encode()), "bytes")
    report("queue_history_full_ring_encode", median_us(encode), "us")


def main(n: int) -> None:
    measure("memory", InMemoryExecutionReadModel(), n)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteExecutionReadModel(Path(tmp) / "views.sqlite3")
        measure("sqlite", sqlite, n)
        sqlite.close()
    name = f"codeexec_bench_{uuid.uuid4().hex[:12]}"
    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        postgres = PostgresExecutionReadModel(replace(server_params(), dbname=name))
        measure("postgres", postgres, n)
        postgres.close()
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    full_ring()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    main(parser.parse_args().n)
