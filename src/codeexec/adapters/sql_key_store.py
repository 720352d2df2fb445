"""SqlKeyStore: API key hashes in one SQL table (SQLite file or the shared PostgreSQL).

Every request checks its key. The SQLite store answers a key it has seen from memory while
the file has not changed since (`_version`: its wal-index header, `WalHeader`; where the
file is not in WAL mode, `PRAGMA data_version`): any commit by another connection, such as
`codeexec keys revoke` in another process, changes it, and the store forgets every key on
its own revocations, so a revoked key is refused at the next request. The reason is the
interpreter lock more than SQLite's own time: a query releases the lock, and with the store
thread busy the event loop then waits to get it back (bench/key_store_bench.py)."""

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
from codeexec.adapters.sqlite_wal_header import WalHeader
from codeexec.ports.key_store import (
    KeyRecord,
    KeyStore,
    Principal,
    Role,
    key_digest,
    new_key,
)

KNOWN_KEYS = 10_000  # keys remembered at most (only keys that exist: unknown ones never are)


class SqlKeyStore(KeyStore):
    def __init__(self, db: SqlDatabase) -> None:
        self.db = db
        # Keys seen to authenticate (digest -> whose), valid while `_version` stays `_seen`.
        self._known: dict[str, Principal] = {}
        self._seen: object = None
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

    def _version(self) -> object:
        """A value that changes whenever another connection commits to these tables, read
        without a query of them; None: there is none, every check reads the table."""
        return None

    def authenticate(self, key: str) -> Principal | None:
        digest = key_digest(key)
        with self.db.read() as cur:
            version = self._version()
            if version is not None and version == self._seen:
                known = self._known.get(digest)
                if known is not None:
                    return known
            else:
                self._known.clear()
                self._seen = version
            cur.execute(
                self.db.sql(
                    "SELECT user_id, role FROM api_keys WHERE digest = ? AND revoked_at IS NULL"
                ),
                (digest,),
            )
            row = cur.fetchone()
            if row is None:
                return None
            principal = Principal(row[0], row[1])
            if version is not None and len(self._known) < KNOWN_KEYS:
                self._known[digest] = principal
        return principal

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
            # `PRAGMA data_version` ignores this connection's own commits: forget them here.
            self._known.clear()
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
        self.sqlite = SQLiteDatabase(path, "key store")
        super().__init__(self.sqlite)  # its first write made the -shm, which stays while open
        self._wal = WalHeader.attach(path) if self.sqlite.wal else None

    def _version(self) -> object:
        return self._wal.read() if self._wal is not None else self.sqlite.data_version()

    def close(self) -> None:
        super().close()
        if self._wal is not None:  # after the connection: closing it earlier drops its locks
            self._wal.release()
            self._wal = None


class PostgresKeyStore(SqlKeyStore):
    """Keys in the shared PostgreSQL database: every API process on every host sees them."""

    def __init__(self, params: PostgresParams) -> None:
        super().__init__(PostgresDatabase(params, "codeexec key store"))

    async def lookup(self, key: str) -> Principal | None:
        return await asyncio.to_thread(self.authenticate, key)
