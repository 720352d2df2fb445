"""Key-store benchmark: what checking an API key costs a request, side by side.

The API checks keys off the event loop (a worker thread, bounded by the store's busy
timeout), because with the shared store they are across the network. This measures one
check, median of N, for the SQLite key store called on the loop (how it was), the same
through the thread (how it is), and the PostgreSQL key store through the thread (a fresh
database on the local server, dropped afterwards). Prints

    bench: key_check_sqlite_on_loop N us
    bench: key_check_sqlite_in_thread N us
    bench: key_check_sqlite_busy_read N us
    bench: key_check_sqlite_busy_known N us
    bench: key_check_postgres_in_thread N us

The `busy` pair is the mean on the loop while another thread runs Python (as the store
thread does under load): `read` a key the store reads the table for (an unknown one: the
path every check took before keys were remembered), `known` a key it has seen (only
`PRAGMA data_version`). The mean, because the cost is in the checks that lose the
interpreter lock to the busy thread and wait for it again.

    python bench/key_store_bench.py [--n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from codeexec.adapters.sql_key_store import PostgresKeyStore, SQLiteKeyStore
from codeexec.ports.key_store import KeyStore
from codeexec.testing.postgres import server_params


def report(name: str, seconds: float) -> None:
    print(f"bench: {name} {seconds * 1e6:.0f} us", flush=True)


async def median_of(n: int, check: Callable[[], object]) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        result = check()
        if asyncio.iscoroutine(result):
            await result
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def measure(keys: KeyStore, n: int, *, thread: bool) -> float:
    key = keys.create("bench")
    if thread:
        return await median_of(n, lambda: asyncio.to_thread(keys.authenticate, key))
    return await median_of(n, lambda: keys.authenticate(key))


def admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(server_params().conninfo(), autocommit=True) as conn:
        conn.execute(statement)


def beside_busy_thread(keys: KeyStore, n: int) -> tuple[float, float]:
    """Mean seconds per check of an unknown key and of a known one, another thread busy."""
    known, unknown = keys.create("bench"), "cx_no_such_key"
    busy = True

    def spin() -> None:
        while busy:
            pass

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        means = []
        for key in (unknown, known):
            started = time.perf_counter()
            for _ in range(n):
                keys.authenticate(key)
            means.append((time.perf_counter() - started) / n)
    finally:
        busy = False
        thread.join()
    return means[0], means[1]


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteKeyStore(Path(tmp) / "keys.sqlite3")
        report("key_check_sqlite_on_loop", await measure(sqlite, n, thread=False))
        report("key_check_sqlite_in_thread", await measure(sqlite, n, thread=True))
        read, known = beside_busy_thread(sqlite, n)
        report("key_check_sqlite_busy_read", read)
        report("key_check_sqlite_busy_known", known)
        sqlite.close()
    name = f"codeexec_bench_{uuid.uuid4().hex[:12]}"
    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        postgres = PostgresKeyStore(replace(server_params(), dbname=name))
        report("key_check_postgres_in_thread", await measure(postgres, n, thread=True))
        postgres.close()
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    asyncio.run(main(parser.parse_args().n))
