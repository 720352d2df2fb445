"""What Judge0 keeps with a submission that our executions do not hold (its language id,
expected output, callback URL and the limits as it states them), in a SQLite file beside the
data dir's keys, keyed by the execution's id (the Judge0 token)."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any
from uuid import UUID

from codeexec.data_dir import private_dir, private_file

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class Judge0Store:
    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        private_file(path)  # 0600 before SQLite opens it; its -wal and -shm take this mode
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL: a crash loses at most the last moments, never the file.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS submissions (token TEXT PRIMARY KEY, user_id TEXT NOT"
            " NULL, echo TEXT NOT NULL, callback_state TEXT)"
        )

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Judge0Store:
        return cls(data_dir / "judge0.sqlite3")

    def add(self, token: UUID, user_id: str, echo: dict[str, Any]) -> None:
        state = PENDING if echo.get("callback_url") else None
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO submissions VALUES (?, ?, ?, ?)",
                (str(token), user_id, json.dumps(echo), state),
            )

    def echo(self, token: UUID) -> dict[str, Any]:
        """Judge0's extras for this token; empty for executions made through our own API."""
        with self._lock:
            row = self._db.execute(
                "SELECT echo FROM submissions WHERE token = ?", (str(token),)
            ).fetchone()
        found: dict[str, Any] = json.loads(row[0]) if row else {}
        return found

    def pending_callbacks(self) -> list[tuple[UUID, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT token, echo FROM submissions WHERE callback_state = ?", (PENDING,)
            ).fetchall()
        return [(UUID(token), json.loads(echo)["callback_url"]) for token, echo in rows]

    def callback_done(self, token: UUID, delivered: bool) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE submissions SET callback_state = ? WHERE token = ?",
                (DELIVERED if delivered else FAILED, str(token)),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
