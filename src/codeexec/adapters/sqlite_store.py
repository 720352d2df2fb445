"""eventsourcing's SQLite persistence, with the durability level chosen by configuration.

`PERSISTENCE_MODULE=codeexec.adapters.sqlite_store` and `SQLITE_SYNCHRONOUS=normal|full`.
In WAL mode `normal` loses nothing when a process dies (the embedded runtime's promise);
only an operating-system crash or power loss can drop the last commits. `full` syncs every
commit to disk."""

from __future__ import annotations

import os
from typing import Any

from eventsourcing import sqlite as es_sqlite  # a module: one factory class found here
from eventsourcing.persistence import InfrastructureFactoryError

SQLITE_SYNCHRONOUS = "SQLITE_SYNCHRONOUS"
LEVELS = ("off", "normal", "full", "extra")


class TunedSQLiteConnectionPool(es_sqlite.SQLiteConnectionPool):
    def __init__(self, *, synchronous: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.synchronous = synchronous

    def _create_connection(self) -> es_sqlite.SQLiteConnection:
        connection = super()._create_connection()
        connection._sqlite_conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return connection


class Factory(es_sqlite.SQLiteFactory):
    def __init__(self, env: Any) -> None:
        super().__init__(env)
        level = (self.env.get(SQLITE_SYNCHRONOUS) or "full").strip().lower()
        if level not in LEVELS:
            raise InfrastructureFactoryError(
                f"{SQLITE_SYNCHRONOUS} must be one of {', '.join(LEVELS)}, not {level!r}"
            )
        old = self.datastore.pool
        self.datastore.pool = TunedSQLiteConnectionPool(
            synchronous=level,
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
