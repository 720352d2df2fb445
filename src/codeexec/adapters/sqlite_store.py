"""eventsourcing's SQLite persistence, with the durability level chosen by configuration.

`PERSISTENCE_MODULE=codeexec.adapters.sqlite_store` and `SQLITE_SYNCHRONOUS=normal|full`.
In WAL mode `normal` loses nothing when a process dies (the embedded runtime's promise);
only an operating-system crash or power loss can drop the last commits. `full` syncs every
commit to disk. `SQLITE_BUSY_TIMEOUT_S` (seconds, may be fractional) bounds how long a write
waits for a lock another connection holds before it fails with OperationalError."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from eventsourcing import sqlite as es_sqlite  # a module: one factory class found here
from eventsourcing.persistence import InfrastructureFactoryError

SQLITE_SYNCHRONOUS = "SQLITE_SYNCHRONOUS"
SQLITE_BUSY_TIMEOUT_S = "SQLITE_BUSY_TIMEOUT_S"
LEVELS = ("off", "normal", "full", "extra")


class TunedSQLiteConnectionPool(es_sqlite.SQLiteConnectionPool):
    def __init__(
        self, *, synchronous: str, busy_timeout_s: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.synchronous = synchronous
        self.busy_timeout_s = busy_timeout_s

    def _create_connection(self) -> es_sqlite.SQLiteConnection:
        connection = super()._create_connection()
        connection._sqlite_conn.execute(f"PRAGMA synchronous={self.synchronous}")
        if self.busy_timeout_s is not None:
            milliseconds = int(self.busy_timeout_s * 1000)
            connection._sqlite_conn.execute(f"PRAGMA busy_timeout={milliseconds}")
        return connection


def check_database(path: Path) -> str | None:
    """Why the SQLite file at `path` cannot serve as a store (corrupt, half-written, not a
    database), or None when it can (or does not exist yet). Reads every page."""
    if not path.exists():
        return None
    try:
        connection = sqlite3.connect(path)  # read-write: a crash may have left a WAL to apply
    except sqlite3.Error as error:
        return str(error)
    try:
        rows = connection.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as error:
        return str(error)
    finally:
        connection.close()
    problems = [str(row[0]) for row in rows if row and row[0] != "ok"]
    return "; ".join(problems[:3]) or None


class Factory(es_sqlite.SQLiteFactory):
    def __init__(self, env: Any) -> None:
        super().__init__(env)
        level = (self.env.get(SQLITE_SYNCHRONOUS) or "full").strip().lower()
        if level not in LEVELS:
            raise InfrastructureFactoryError(
                f"{SQLITE_SYNCHRONOUS} must be one of {', '.join(LEVELS)}, not {level!r}"
            )
        busy = (self.env.get(SQLITE_BUSY_TIMEOUT_S) or "").strip()
        try:
            busy_timeout_s = float(busy) if busy else None
        except ValueError:
            raise InfrastructureFactoryError(
                f"{SQLITE_BUSY_TIMEOUT_S} must be a number of seconds, not {busy!r}"
            ) from None
        old = self.datastore.pool
        self.datastore.pool = TunedSQLiteConnectionPool(
            synchronous=level,
            busy_timeout_s=busy_timeout_s,
            db_name=old.db_name,
            lock_timeout=old.lock_timeout,
        )
        old.close()


def database_bytes(db_name: str) -> int:
    """What the database occupies on disk: its file, write-ahead log and shared memory."""
    total = 0
    for path in (db_name, db_name + "-wal", db_name + "-shm"):
        try:
            total += os.stat(path).st_size
        except FileNotFoundError:
            pass
    return total
