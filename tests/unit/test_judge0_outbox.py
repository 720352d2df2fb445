"""The Judge0 callback outbox, and the one-time upgrade of a file an older version wrote
(extras and callback state together in a `submissions` table)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

from codeexec_server.compat.judge0.store import Judge0Store


def test_a_callback_is_pending_until_done(tmp_path: Path) -> None:
    store = Judge0Store.in_data_dir(tmp_path)
    token = uuid.uuid4()
    store.add(token, "https://example.com/cb")
    assert store.pending_callbacks() == [(token, "https://example.com/cb")]
    store.callback_done(token, True)
    assert store.pending_callbacks() == []
    assert store.legacy_echo(token) == {}
    store.close()


def test_an_older_file_moves_its_pending_callbacks_and_keeps_its_extras(tmp_path: Path) -> None:
    old, done = uuid.uuid4(), uuid.uuid4()
    echo = {"callback_url": "https://example.com/cb", "expected_output": "NDI="}
    db = sqlite3.connect(tmp_path / "judge0.sqlite3")
    db.execute(
        "CREATE TABLE submissions (token TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
        " echo TEXT NOT NULL, callback_state TEXT)"
    )
    db.execute(
        "INSERT INTO submissions VALUES (?, 'u', ?, 'pending')", (str(old), json.dumps(echo))
    )
    db.execute("INSERT INTO submissions VALUES (?, 'u', ?, 'delivered')", (str(done), "{}"))
    db.commit()
    db.close()
    store = Judge0Store.in_data_dir(tmp_path)
    assert store.pending_callbacks() == [(old, "https://example.com/cb")]
    assert store.legacy_echo(old) == echo
    store.callback_done(old, True)
    store.close()
    reopened = Judge0Store.in_data_dir(tmp_path)  # moved once: not pending again
    assert reopened.pending_callbacks() == []
    reopened.close()
