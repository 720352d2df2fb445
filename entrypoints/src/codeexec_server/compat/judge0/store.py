"""Judge0 callbacks still to deliver (the callback outbox), in a SQLite file beside the data
dir's keys, keyed by the execution's id (the Judge0 token).

The submission's extras themselves (expected output, callback URL, limits as stated) are no
longer here: they are annotations recorded with the request (see service.py). Files written
before that kept them in a `submissions` table; it is only read, for those old tokens."""

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
            "CREATE TABLE IF NOT EXISTS callbacks (token TEXT PRIMARY KEY, url TEXT NOT NULL,"
            " state TEXT NOT NULL)"
        )
        self._legacy = self._has_table("submissions")
        if self._legacy:  # once: callbacks an older version left pending move to the outbox
            self._db.execute(
                "INSERT OR IGNORE INTO callbacks SELECT token, json_extract(echo,"
                " '$.callback_url'), callback_state FROM submissions WHERE callback_state = ?",
                (PENDING,),
            )
            self._db.execute("UPDATE submissions SET callback_state = NULL")

    def _has_table(self, name: str) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return self._db.execute(query, (name,)).fetchone() is not None

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Judge0Store:
        return cls(data_dir / "judge0.sqlite3")

    def add(self, token: UUID, url: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO callbacks VALUES (?, ?, ?)", (str(token), url, PENDING)
            )

    def legacy_echo(self, token: UUID) -> dict[str, Any]:
        """The extras an older version kept here for this token; empty for any other."""
        if not self._legacy:
            return {}
        with self._lock:
            row = self._db.execute(
                "SELECT echo FROM submissions WHERE token = ?", (str(token),)
            ).fetchone()
        found: dict[str, Any] = json.loads(row[0]) if row else {}
        return found

    def pending_callbacks(self) -> list[tuple[UUID, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT token, url FROM callbacks WHERE state = ?", (PENDING,)
            ).fetchall()
        return [(UUID(token), url) for token, url in rows]

    def callback_done(self, token: UUID, delivered: bool) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE callbacks SET state = ? WHERE token = ?",
                (DELIVERED if delivered else FAILED, str(token)),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
