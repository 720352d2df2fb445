"""Which store holds the events, read model and keys: CODEEXEC_STORE=memory|sqlite|postgres.

The event store is an eventsourcing persistence module configured by environment variables;
this builds that environment. PostgreSQL is eventsourcing's own module, with group commit
(`codeexec.adapters.postgres_store`), configured by its own POSTGRES_DBNAME, POSTGRES_HOST,
POSTGRES_PORT, POSTGRES_USER, POSTGRES_PASSWORD (and POSTGRES_SCHEMA); the read model and
key store use the same connection settings, so one database holds everything a deployment shares.
An exported PERSISTENCE_MODULE always chooses the event store's module (an adapter's, or a
tuned subclass), as eventsourcing documents; CODEEXEC_STORE then only says where the read
model and keys live."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codeexec.adapters.sql_database import PostgresParams, StoreConfigError
from codeexec.data_dir import private_dir, private_file

if TYPE_CHECKING:  # adapters are imported only when chosen
    from codeexec.ports.execution_queries import ExecutionQueries
    from codeexec.ports.key_store import KeyStore
    from codeexec.ports.read_model import ExecutionReadModel

STORES = ("memory", "sqlite", "postgres")
MODULES = {
    "memory": "eventsourcing.popo",
    "sqlite": "codeexec.adapters.sqlite_store",
    "postgres": "codeexec.adapters.postgres_store",
}
POSTGRES_MODULES = (MODULES["postgres"], "eventsourcing.postgres")
PERSISTENCE_MODULE = "PERSISTENCE_MODULE"
AGGREGATE_CACHE = 100_000
SHARED_POOL_SIZE = 2
"""Connections a process keeps to a shared PostgreSQL store (eventsourcing's default is 5,
plus 10 on demand): its store calls all come from one thread, so one is in use at a time
and a second serves a read outside a turn. The eight processes of bench/distributed_bench.py
held 51 of the server's 100 connections with eventsourcing's default, 30 with this.
Exported POSTGRES_* variables were dropped before: now they reach eventsourcing."""


__all__ = ["PostgresParams", "StoreConfig", "StoreConfigError", "store_config"]


@dataclass(frozen=True)
class StoreConfig:
    kind: str  # memory, sqlite or postgres: where the read model and keys live
    env: dict[str, str]  # for ExecutionStore (eventsourcing's persistence variables)
    data_dir: Path | None = None
    postgres: PostgresParams | None = None
    single_writer: bool = False
    """Only this process writes the events (memory, or the data dir's own SQLite file, which
    the data dir's lock keeps to one runtime): then loaded aggregates may be cached. A shared
    store (PostgreSQL, an exported module) is written by other processes too: never cached."""

    def describe(self) -> str:
        """The event store, as an error message names it."""
        module = self.env[PERSISTENCE_MODULE]
        if module not in MODULES.values() and module not in POSTGRES_MODULES:
            return f"the event store of PERSISTENCE_MODULE={module}"
        if "SQLITE_DBNAME" in self.env:
            return f"the event store {self.env['SQLITE_DBNAME']}"
        if self.postgres is not None:
            where = f"{self.postgres.host}:{self.postgres.port}"
            schema = f" (schema {self.postgres.schema})" if self.postgres.schema else ""
            return f"the PostgreSQL database {self.postgres.dbname} on {where}{schema}"
        return "the in-memory event store"

    @property
    def aggregate_cache_size(self) -> int:
        """How many aggregates `ExecutionStore` may keep loaded (0: none, read every time)."""
        return AGGREGATE_CACHE if self.single_writer else 0

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

    def queries(self, read_model: ExecutionReadModel) -> ExecutionQueries:
        """The API's awaited reads of `read_model` (this store's own, or one given):
        answered in place when local, in a thread across the network."""
        from codeexec.adapters.read_model_queries import ReadModelQueries

        return ReadModelQueries(read_model, in_thread=self.kind == "postgres")

    def key_store(self) -> KeyStore:
        """API keys (hashes only): a SQLite file in the data dir, or the shared database."""
        if self.kind == "postgres":
            from codeexec.adapters.sql_key_store import PostgresKeyStore

            assert self.postgres is not None
            return PostgresKeyStore(self.postgres)
        from codeexec.adapters.sql_key_store import SQLiteKeyStore

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
        kind = "postgres" if module in POSTGRES_MODULES else "sqlite" if data_dir else "memory"
    if kind not in STORES:
        raise StoreConfigError(f"CODEEXEC_STORE must be one of {', '.join(STORES)}, not {kind!r}")
    env = {PERSISTENCE_MODULE: module or MODULES[kind]}
    postgres = None
    if kind == "sqlite":
        if data_dir is None:
            raise StoreConfigError("CODEEXEC_STORE=sqlite needs a data dir (CODEEXEC_DATA_DIR)")
        private_dir(data_dir)  # it holds every user's code and output, and the key hashes
        if not module:
            # Created 0600 before SQLite opens it: its -wal and -shm files take this mode.
            database = private_file(data_dir / "events.sqlite3")
            env.update(
                SQLITE_DBNAME=str(database),
                SQLITE_LOCK_TIMEOUT="10",
                SQLITE_SYNCHRONOUS="normal",
            )
            env.update(sqlite_env or {})
    elif kind == "postgres":
        postgres = PostgresParams.from_env(environ)
        if not module or module in POSTGRES_MODULES:
            env.update(postgres.env())
            # eventsourcing's other POSTGRES_* settings (pool, timeouts) as given; the pool
            # small unless set: one thread makes a process's store calls (SHARED_POOL_SIZE).
            env.update({k: v for k, v in environ.items() if k.startswith("POSTGRES_")})
            env.setdefault("POSTGRES_POOL_SIZE", str(SHARED_POOL_SIZE))
    single_writer = not module and kind in ("memory", "sqlite")
    return StoreConfig(kind, env, data_dir, postgres, single_writer)
