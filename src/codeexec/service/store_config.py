"""Which store holds the events, read model and keys: CODEEXEC_STORE=memory|sqlite|postgres.

The event store is an eventsourcing persistence module configured by environment variables;
this builds that environment. PostgreSQL is eventsourcing's own module
(`eventsourcing.postgres`) with its own POSTGRES_DBNAME, POSTGRES_HOST, POSTGRES_PORT,
POSTGRES_USER, POSTGRES_PASSWORD (and POSTGRES_SCHEMA); the read model and key store use
the same connection settings, so one database holds everything a deployment shares.
An exported PERSISTENCE_MODULE always chooses the event store's module (an adapter's, or a
tuned subclass), as eventsourcing documents; CODEEXEC_STORE then only says where the read
model and keys live."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # adapters are imported only when chosen
    from codeexec.ports.key_store import KeyStore
    from codeexec.ports.read_model import ExecutionReadModel

STORES = ("memory", "sqlite", "postgres")
MODULES = {
    "memory": "eventsourcing.popo",
    "sqlite": "codeexec.adapters.sqlite_store",
    "postgres": "eventsourcing.postgres",
}
PERSISTENCE_MODULE = "PERSISTENCE_MODULE"


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


@dataclass(frozen=True)
class StoreConfig:
    kind: str  # memory, sqlite or postgres: where the read model and keys live
    env: dict[str, str]  # for ExecutionStore (eventsourcing's persistence variables)
    data_dir: Path | None = None
    postgres: PostgresParams | None = None

    def read_model(self) -> ExecutionReadModel:
        """The read model this store keeps: in memory, or a table beside the events."""
        if self.kind == "sqlite":
            from codeexec.adapters.sqlite_read_model import SQLiteExecutionReadModel

            assert self.data_dir is not None
            return SQLiteExecutionReadModel(self.data_dir / "read_model.sqlite3")
        if self.kind == "postgres":
            from codeexec.adapters.postgres_read_model import PostgresExecutionReadModel

            assert self.postgres is not None
            return PostgresExecutionReadModel(self.postgres)
        from codeexec.adapters.memory_read_model import InMemoryExecutionReadModel

        return InMemoryExecutionReadModel()

    def key_store(self) -> KeyStore:
        """API keys (hashes only): a SQLite file in the data dir, or the shared database."""
        if self.kind == "postgres":
            from codeexec.adapters.postgres_key_store import PostgresKeyStore

            assert self.postgres is not None
            return PostgresKeyStore(self.postgres)
        from codeexec.adapters.sqlite_key_store import SQLiteKeyStore

        if self.data_dir is None:
            raise StoreConfigError("API keys need a data dir (CODEEXEC_DATA_DIR) or postgres")
        return SQLiteKeyStore(self.data_dir / "keys.sqlite3")


def store_config(
    kind: str | None = None,
    data_dir: Path | None = None,
    *,
    sqlite_env: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> StoreConfig:
    """`kind` None reads CODEEXEC_STORE; unset too, it is sqlite with a data dir (memory
    without), or postgres when PERSISTENCE_MODULE is eventsourcing's PostgreSQL module.
    `sqlite_env` overrides the SQLite module's defaults (file, lock timeout, durability)."""
    environ = os.environ if environ is None else environ
    module = environ.get(PERSISTENCE_MODULE, "").strip()
    kind = (kind or environ.get("CODEEXEC_STORE", "")).strip().lower()
    if not kind:
        kind = "postgres" if module == MODULES["postgres"] else "sqlite" if data_dir else "memory"
    if kind not in STORES:
        raise StoreConfigError(f"CODEEXEC_STORE must be one of {', '.join(STORES)}, not {kind!r}")
    env = {PERSISTENCE_MODULE: module or MODULES[kind]}
    postgres = None
    if kind == "sqlite":
        if data_dir is None:
            raise StoreConfigError("CODEEXEC_STORE=sqlite needs a data dir (CODEEXEC_DATA_DIR)")
        data_dir.mkdir(parents=True, exist_ok=True)
        if not module:
            env.update(
                SQLITE_DBNAME=str(data_dir / "events.sqlite3"),
                SQLITE_LOCK_TIMEOUT="10",
                SQLITE_SYNCHRONOUS="normal",
            )
            env.update(sqlite_env or {})
    elif kind == "postgres":
        postgres = PostgresParams.from_env(environ)
        if not module or module == MODULES["postgres"]:
            env.update(postgres.env())
    return StoreConfig(kind, env, data_dir, postgres)
