"""Event store benchmark: events/s saved and read back through the Mongo recorder, beside the
SQLite and PostgreSQL modules, in one run.

Each store gets a fresh database: MongoDB is the nx-27017 test server started here (a wire
protocol server on SQLite, about 1 ms a round trip: not MongoDB's speed), SQLite a file in
a temp dir (codeexec's module, synchronous=normal), PostgreSQL a new database on the local
server (codeexec's module, dropped afterwards). Through eventsourcing's process recorder,
as codeexec writes: one event per save, then 100 per save, then the whole log read back
by position in pages of 1000. Prints

    bench: <store>_events_per_s_single N events/s
    bench: <store>_events_per_s_batch100 N events/s
    bench: <store>_events_per_s_read N events/s

    python bench/mongo_store_bench.py [--single 500] [--batches 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from eventsourcing.persistence import InfrastructureFactory, ProcessRecorder, StoredEvent
from eventsourcing.utils import Environment

STATE = b'{"type":"ExecutionOutput","schema_version":1,"data":"' + b"x" * 200 + b'"}'


def report(name: str, value: float, unit: str) -> None:
    print(f"bench: {name} {value:.0f} {unit}", flush=True)


@contextmanager
def mongo_env(workdir: Path) -> Iterator[dict[str, str]]:
    from codeexec_mongo.test_server import TestMongoServer

    with TestMongoServer(workdir / "nx") as server:
        yield {
            "PERSISTENCE_MODULE": "codeexec_mongo.persistence",
            "MONGO_URL": server.url,
            "MONGO_DB": "bench",
        }


@contextmanager
def sqlite_env(workdir: Path) -> Iterator[dict[str, str]]:
    yield {
        "PERSISTENCE_MODULE": "codeexec.adapters.sqlite_store",
        "SQLITE_DBNAME": str(workdir / "events.sqlite3"),
        "SQLITE_SYNCHRONOUS": "normal",
    }


@contextmanager
def postgres_env(workdir: Path) -> Iterator[dict[str, str]]:
    import psycopg
    from psycopg import sql

    from codeexec.testing.postgres import server_params

    name = f"codeexec_bench_{uuid.uuid4().hex[:8]}"

    def admin(statement: str) -> None:
        with psycopg.connect(server_params().conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(name)))

    admin("CREATE DATABASE {}")
    try:
        yield {"PERSISTENCE_MODULE": "codeexec.adapters.postgres_store"} | server_params(name).env()
    finally:
        admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def events(count: int) -> list[StoredEvent]:
    aggregate = uuid.uuid4()
    topic = "codeexec:ExecutionOutput"
    return [StoredEvent(aggregate, v, topic, STATE) for v in range(1, count + 1)]


def rate(n: int, work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return n / (time.perf_counter() - started)


def measure(name: str, env: dict[str, str], single: int, batches: int) -> None:
    factory = InfrastructureFactory.construct(Environment(env=env))
    recorder = factory.process_recorder()
    assert isinstance(recorder, ProcessRecorder)
    recorder.insert_events(events(1))  # warm: connections, indexes

    def one_per_save() -> None:
        for _ in range(single):
            recorder.insert_events(events(1))

    def batched() -> None:
        for _ in range(batches):
            recorder.insert_events(events(100))

    def read_back() -> None:
        start, total = 1, 0
        while page := recorder.select_notifications(start, 1000):
            total += len(page)
            start = page[-1].id + 1
        assert total == 1 + single + 100 * batches, total

    report(f"{name}_events_per_s_single", rate(single, one_per_save), "events/s")
    report(f"{name}_events_per_s_batch100", rate(100 * batches, batched), "events/s")
    report(f"{name}_events_per_s_read", rate(1 + single + 100 * batches, read_back), "events/s")
    factory.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--single", type=int, default=500)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    stores = (("mongo", mongo_env), ("sqlite", sqlite_env), ("postgres", postgres_env))
    for name, env_of in stores:
        with tempfile.TemporaryDirectory() as tmp, env_of(Path(tmp)) as env:
            measure(name, env, args.single, args.batches)


if __name__ == "__main__":
    main()
