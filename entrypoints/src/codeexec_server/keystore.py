"""KeyStore: API keys kept as sha256 hashes in a SQLite file under the data dir."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codeexec.data_dir import private_dir, private_file

Role = Literal["user", "admin"]
KEY_PREFIX = "cx_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user id that owns executions, and their role."""

    user_id: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    user_id: str
    role: Role
    created_at: float
    revoked_at: float | None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    """Keys are shown once at creation; only their hashes are stored."""

    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        private_file(path)  # 0600 before SQLite opens it; its -wal and -shm take this mode
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, digest TEXT UNIQUE"
            " NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL, created_at REAL NOT NULL,"
            " revoked_at REAL)"
        )

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> KeyStore:
        return cls(data_dir / "keys.sqlite3")

    def create(self, user_id: str, role: Role = "user") -> str:
        if not user_id or len(user_id) > 128:
            raise ValueError("user id must be 1-128 characters")
        if role not in ("user", "admin"):
            raise ValueError(f"unknown role {role!r}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = secrets.token_hex(6)
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
                (key_id, _digest(key), user_id, role, time.time()),
            )
        return key

    def authenticate(self, key: str) -> Principal | None:
        with self._lock:
            row = self._db.execute(
                "SELECT user_id, role FROM api_keys WHERE digest = ? AND revoked_at IS NULL",
                (_digest(key),),
            ).fetchone()
        return Principal(row[0], row[1]) if row else None

    def list(self) -> list[KeyRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key_id, user_id, role, created_at, revoked_at FROM api_keys"
                " ORDER BY created_at"
            ).fetchall()
        return [KeyRecord(*row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
        return cursor.rowcount > 0

    def is_empty(self) -> bool:
        with self._lock:
            count: int = self._db.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0]
        return count == 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
