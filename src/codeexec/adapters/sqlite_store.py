"""eventsourcing's SQLite persistence, with the durability level chosen by configuration.

`PERSISTENCE_MODULE=codeexec.adapters.sqlite_store` and `SQLITE_SYNCHRONOUS=normal|full`.
In WAL mode `normal` loses nothing when a process dies (the embedded runtime's promise);
only an operating-system crash or power loss can drop the last commits. `full` syncs every
commit to disk. `SQLITE_BUSY_TIMEOUT_S` (seconds, may be fractional) bounds how long a write
waits for a lock another connection holds before it fails with OperationalError.

Group commit: in a turn of the store thread (`codeexec.ports.store_turn`), the first write
begins one transaction (BEGIN IMMEDIATE) on the writer connection; every transaction of the
turn, reads included, then runs in it as a savepoint, and the turn commits once."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from eventsourcing import persistence as es
from eventsourcing import sqlite as es_sqlite  # a module: one factory class found here
from eventsourcing.persistence import InfrastructureFactoryError

from codeexec.adapters.db_errors import persistence_error
from codeexec.ports.store_turn import current_turn

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


def _translated(error: sqlite3.Error) -> es.PersistenceError:
    """The eventsourcing error a plain transaction would raise (as SQLiteTransaction does)."""
    return persistence_error(error, sqlite3)(error)


class TurnSQLiteDatastore(es_sqlite.SQLiteDatastore):
    """Joins the store thread's turn at its first write (see the module's docstring)."""

    def __init__(self, pool: es_sqlite.SQLiteConnectionPool, **kwargs: Any) -> None:
        super().__init__(db_name=pool.db_name, **kwargs)
        self.pool.close()
        self.pool = pool
        self._turn: tuple[int, es_sqlite.SQLiteConnection, ExitStack] | None = None

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[es_sqlite.SQLiteCursor]:
        connection = self._turn_connection(write=commit)
        if connection is None:
            with super().transaction(commit=commit) as cursor:
                yield cursor
            return
        if not commit:
            # A read: SQLite's failed statements leave the transaction as it was, so no
            # savepoint is needed for it to leave the turn's writes be.
            cursor = connection.cursor()
            with cursor:
                try:
                    yield cursor
                except sqlite3.Error as error:
                    raise _translated(error) from error
            return
        raw = connection._sqlite_conn
        try:
            raw.execute("SAVEPOINT call")
        except sqlite3.Error as error:
            raise _translated(error) from error
        try:
            cursor = connection.cursor()
            with cursor:  # closes it
                yield cursor
        except BaseException as failure:
            _undo(raw)
            if isinstance(failure, sqlite3.Error):
                raise _translated(failure) from failure
            raise
        try:
            raw.execute("RELEASE call")
        except sqlite3.Error as error:
            raise _translated(error) from error

    def _turn_connection(self, *, write: bool) -> es_sqlite.SQLiteConnection | None:
        """The connection holding this thread's turn open; begins it on a turn's first
        write. None outside a turn (and for reads before its first write): the pool's."""
        if self._turn is not None and self._turn[0] == threading.get_ident():
            return self._turn[1]
        turn = current_turn() if write else None
        if turn is None:
            return None
        stack = ExitStack()
        try:
            connection = stack.enter_context(self.get_connection(commit=True))
            connection._sqlite_conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            stack.close()
            raise _translated(error) from error
        except BaseException:
            stack.close()
            raise
        self._turn = (threading.get_ident(), connection, stack)
        turn.join(self)
        return connection

    def end_turn(self, commit: bool) -> None:
        assert self._turn is not None
        _, connection, stack = self._turn
        self._turn = None
        raw = connection._sqlite_conn
        try:
            if commit and not raw.in_transaction:
                # An error SQLite answers by rolling back everything (a full disk, an I/O
                # error) took the turn's writes with it: its calls must not hear success.
                raise sqlite3.OperationalError("the turn's transaction was rolled back")
            if commit:
                raw.commit()
            else:
                raw.rollback()
        except sqlite3.Error as error:
            _undo(raw, to_savepoint=False)
            raise _translated(error) from error
        finally:
            stack.close()  # the writer connection goes back to the pool


def _undo(raw: sqlite3.Connection, *, to_savepoint: bool = True) -> None:
    """Roll back a failed call's savepoint (or the whole transaction); if even that
    fails, the transaction is gone already and the turn's commit reports it."""
    try:
        if to_savepoint:
            raw.execute("ROLLBACK TO call")
            raw.execute("RELEASE call")
        elif raw.in_transaction:
            raw.rollback()
    except sqlite3.Error:
        pass


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
        old = self.datastore
        pool = TunedSQLiteConnectionPool(
            synchronous=level,
            busy_timeout_s=busy_timeout_s,
            db_name=old.pool.db_name,
            lock_timeout=old.pool.lock_timeout,
        )
        old.close()
        self.datastore = TurnSQLiteDatastore(
            pool,
            single_row_tracking=old.single_row_tracking,
            originator_id_type=old.originator_id_type,
        )


def database_bytes(db_name: str) -> int:
    """What the database occupies on disk: its file, write-ahead log and shared memory."""
    total = 0
    for path in (db_name, db_name + "-wal", db_name + "-shm"):
        try:
            total += os.stat(path).st_size
        except FileNotFoundError:
            pass
    return total
