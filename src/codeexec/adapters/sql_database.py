"""SqlDatabase: one connection to SQLite or PostgreSQL, with serialized write transactions.

The read model and the key store write the same SQL to both; what differs is here: the
parameter style, the binary column type, how a write transaction excludes other writers
(SQLite `BEGIN IMMEDIATE`, PostgreSQL a transaction-level advisory lock, across every
process sharing the database), and which errors mean "busy or unreachable, retry": those
are raised as eventsourcing's OperationalError, like the event store's own, so callers
(the store thread) treat every store the same. Calls are blocking: async code makes them
through the store thread. psycopg is imported only when a PostgreSQL database is opened."""

from __future__ import annotations

import sqlite3
import threading
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from eventsourcing.persistence import OperationalError

from codeexec.data_dir import private_dir, private_file


class StoreConfigError(ValueError):
    """The store settings are incomplete or contradict each other; says which variable."""


@dataclass(frozen=True)
class PostgresParams:
    """Where the shared PostgreSQL database is: eventsourcing's POSTGRES_* variables."""

    dbname: str
    host: str
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    schema: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PostgresParams:
        missing = [k for k in ("POSTGRES_DBNAME", "POSTGRES_HOST") if not env.get(k)]
        if missing:
            raise StoreConfigError(f"CODEEXEC_STORE=postgres needs {' and '.join(missing)}")
        port = env.get("POSTGRES_PORT") or "5432"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise StoreConfigError(f"POSTGRES_PORT must be a TCP port number, not {port!r}")
        return cls(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=int(port),
            user=env.get("POSTGRES_USER") or "postgres",
            password=env.get("POSTGRES_PASSWORD", ""),
            schema=env.get("POSTGRES_SCHEMA", ""),
        )

    def env(self) -> dict[str, str]:
        """The variables eventsourcing's PostgreSQL module reads."""
        env = {
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
        }
        if self.schema:
            env["POSTGRES_SCHEMA"] = self.schema
        return env

    def conninfo(self) -> str:
        """A libpq connection string (for psycopg), tables found in `schema` first."""
        parts = {
            "dbname": self.dbname,
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "connect_timeout": "10",
        }
        if self.password:
            parts["password"] = self.password
        if self.schema:
            parts["options"] = f"-c search_path={self.schema}"
        return " ".join(f"{key}={_quoted(value)}" for key, value in parts.items())


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def execute(self, sql: Any, params: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: Any, params: Sequence[Sequence[Any]], /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class SqlDatabase(ABC):
    placeholder = "?"
    blob = "BLOB"
    real = "REAL"  # a float64 column
    operational_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, name: str) -> None:
        self.name = name  # what the lock excludes: one name per set of tables
        self._lock = threading.Lock()  # one connection: one caller at a time

    def sql(self, text: str) -> str:
        """Statements are written with `?`; PostgreSQL takes `%s`."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    @contextmanager
    def write(self) -> Iterator[Cursor]:
        """A transaction no other writer of these tables runs beside, in any process."""
        with self._lock, self._translated(), self._write() as cursor:
            yield cursor

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        """For reading: each statement sees a consistent snapshot of committed writes."""
        with self._lock, self._translated(), self._read() as cursor:
            yield cursor

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except self.operational_errors as error:
            raise OperationalError(f"{self.name}: {error}") from error

    @abstractmethod
    def _write(self) -> Any: ...

    @abstractmethod
    def _read(self) -> Any: ...

    @abstractmethod
    def close(self) -> None: ...


class SQLiteDatabase(SqlDatabase):
    operational_errors = (sqlite3.OperationalError,)

    def __init__(self, path: Path, name: str, busy_timeout_s: float = 10.0) -> None:
        super().__init__(name)
        # Private like the rest of the data dir; 0600 before SQLite opens it, so its -wal
        # and -shm files take that mode too.
        private_dir(path.parent)
        private_file(path)
        self._db = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=busy_timeout_s
        )
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        self.wal = str(mode).lower() == "wal"  # not where the file system cannot share memory
        # WAL with `normal`: a process that dies loses nothing (as the event store).
        self._db.execute("PRAGMA synchronous=normal")

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        cursor = self._db.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        yield self._db.cursor()  # autocommit: no BEGIN/COMMIT round trips for a read

    def data_version(self) -> int:
        """SQLite's `PRAGMA data_version`: it changes when another connection (in this
        process or another) commits to the file, not for this connection's own commits. Call
        it inside `read()` or `write()` (the connection serves one caller at a time)."""
        value: int = self._db.execute("PRAGMA data_version").fetchone()[0]
        return value

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresDatabase(SqlDatabase):
    placeholder = "%s"
    blob = "BYTEA"
    real = "DOUBLE PRECISION"  # PostgreSQL's REAL is float32: seconds would lose precision

    def __init__(self, params: PostgresParams, name: str) -> None:
        import psycopg

        super().__init__(name)
        self.operational_errors = (psycopg.OperationalError,)
        self._psycopg = psycopg
        self._conninfo = params.conninfo()
        # Writers of these tables in every process exclude each other by this key.
        self._lock_key = zlib.crc32(name.encode()) - 2**31
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._psycopg.connect(self._conninfo, autocommit=True)
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            yield cursor

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        with self._connection().cursor() as cursor:  # autocommit: one round trip a query
            yield cursor

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
