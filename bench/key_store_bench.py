"""Key-store benchmark: what checking an API key costs a request, side by side.

The API checks keys off the event loop (a worker thread, bounded by the store's busy
timeout), because with the shared store they are across the network. This measures one
check, median of N, for the SQLite key store called on the loop (how it was), the same
through the thread (how it is), and the PostgreSQL key store through the thread (a fresh
database on the local server, dropped afterwards). Prints

    bench: key_check_sqlite_on_loop N us
    bench: key_check_sqlite_in_thread N us
    bench: key_check_postgres_in_thread N us

    python bench/key_store_bench.py [--n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
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


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteKeyStore(Path(tmp) / "keys.sqlite3")
        report("key_check_sqlite_on_loop", await measure(sqlite, n, thread=False))
        report("key_check_sqlite_in_thread", await measure(sqlite, n, thread=True))
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
