"""SqlKeyStore: API key hashes in one SQL table (SQLite file or the shared PostgreSQL)."""

from __future__ import annotations

import asyncio
import builtins
import time
from pathlib import Path

from codeexec.adapters.sql_database import (
    PostgresDatabase,
    PostgresParams,
    SqlDatabase,
    SQLiteDatabase,
)
from codeexec.ports.key_store import (
    KeyRecord,
    KeyStore,
    Principal,
    Role,
    key_digest,
    new_key,
)


class SqlKeyStore(KeyStore):
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db
        with db.write() as cur:
            # The table keys.sqlite3 files have had from the start: old files keep working.
            cur.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, digest TEXT"
                " UNIQUE NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL,"
                f" created_at {db.real} NOT NULL, revoked_at {db.real})"
            )

    def create(self, user_id: str, role: Role = "user") -> str:
        made = new_key(user_id, role)
        with self.db.write() as cur:
            cur.execute(
                self.db.sql("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)"),
                (made.key_id, made.digest, user_id, role, made.created_at),
            )
        return made.key

    def authenticate(self, key: str) -> Principal | None:
        with self.db.read() as cur:
            cur.execute(
                self.db.sql(
                    "SELECT user_id, role FROM api_keys WHERE digest = ? AND revoked_at IS NULL"
                ),
                (key_digest(key),),
            )
            row = cur.fetchone()
        return Principal(row[0], row[1]) if row else None

    def list(self) -> builtins.list[KeyRecord]:
        with self.db.read() as cur:
            cur.execute(
                "SELECT key_id, user_id, role, created_at, revoked_at FROM api_keys"
                " ORDER BY created_at, key_id"
            )
            return [KeyRecord(*row) for row in cur.fetchall()]

    def revoke(self, key_id: str) -> bool:
        with self.db.write() as cur:
            cur.execute(
                self.db.sql(
                    "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL"
                ),
                (time.time(), key_id),
            )
            return cur.rowcount > 0

    def is_empty(self) -> bool:
        with self.db.read() as cur:
            cur.execute("SELECT 1 FROM api_keys LIMIT 1")
            return cur.fetchone() is None

    def close(self) -> None:
        self.db.close()


class SQLiteKeyStore(SqlKeyStore):
    """Keys in a SQLite file (the data dir's keys.sqlite3): one host's processes share it."""

    def __init__(self, path: Path) -> None:
        super().__init__(SQLiteDatabase(path, "key store"))


class PostgresKeyStore(SqlKeyStore):
    """Keys in the shared PostgreSQL database: every API process on every host sees them."""

    def __init__(self, params: PostgresParams) -> None:
        super().__init__(PostgresDatabase(params, "codeexec key store"))

    async def lookup(self, key: str) -> Principal | None:
        return await asyncio.to_thread(self.authenticate, key)
