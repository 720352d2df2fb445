"""Both key stores pass the one contract: the SQLite file and the shared PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codeexec.adapters.sql_database import PostgresParams
from codeexec.adapters.sql_key_store import PostgresKeyStore, SQLiteKeyStore, SqlKeyStore
from codeexec.adapters.sqlite_wal_header import WalHeader
from codeexec.ports.key_store import KeyStore, Principal, key_digest
from codeexec.testing.key_store import KeyStoreContract

Factory = Callable[[], KeyStore]


class Opened:
    def __init__(self, make: Callable[[int], SqlKeyStore]) -> None:
        self.make, self.storage = make, 0
        self.stores: list[SqlKeyStore] = []

    def new(self) -> KeyStore:
        self.storage += 1
        return self.reopen()

    def reopen(self) -> KeyStore:
        self.stores.append(self.make(self.storage))
        return self.stores[-1]

    def close(self) -> None:
        for store in self.stores:
            store.close()


class TestSQLiteKeyStore(KeyStoreContract):
    @pytest.fixture
    def opened(self, tmp_path: Path) -> Iterator[Opened]:
        opened = Opened(lambda n: SQLiteKeyStore(tmp_path / f"keys{n}.sqlite3"))
        yield opened
        opened.close()

    @pytest.fixture
    def new_key_store(self, opened: Opened) -> Factory:
        return opened.new

    @pytest.fixture
    def reopen_key_store(self, opened: Opened) -> Factory:
        return opened.reopen


@pytest.mark.integration
class TestPostgresKeyStore(TestSQLiteKeyStore):
    @pytest.fixture
    def opened(self, postgres: PostgresParams) -> Iterator[Opened]:
        # One schema per test: a second `new` in one test would share it, so none does.
        opened = Opened(lambda n: PostgresKeyStore(postgres))
        yield opened
        opened.close()


def test_only_hashes_are_stored(tmp_path: Path) -> None:
    keys = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    key = keys.create("alice")
    keys.close()
    dump = "\n".join(sqlite3.connect(tmp_path / "keys.sqlite3").iterdump())
    assert key not in dump and key[3:] not in dump and key_digest(key) in dump


def test_a_key_file_written_before_still_authenticates(tmp_path: Path) -> None:
    """keys.sqlite3 files of earlier versions open unchanged."""
    db = sqlite3.connect(tmp_path / "keys.sqlite3")
    db.execute(
        "CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, digest TEXT UNIQUE NOT NULL, user_id"
        " TEXT NOT NULL, role TEXT NOT NULL, created_at REAL NOT NULL, revoked_at REAL)"
    )
    db.execute(
        "INSERT INTO api_keys VALUES ('k1', ?, 'old', 'admin', 1.5, NULL)", (key_digest("cx_old"),)
    )
    db.commit()
    db.close()
    keys = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    assert keys.authenticate("cx_old") is not None and keys.list()[0].created_at == 1.5
    keys.close()


def test_a_key_seen_before_is_answered_without_reading_the_table(tmp_path: Path) -> None:
    """A query releases the interpreter lock, and the loop waits to get it back behind the
    store thread: a known key is answered from memory while the wal-index header stands
    still, without a statement."""
    keys = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    key = keys.create("alice")
    statements: list[str] = []
    keys.sqlite._db.set_trace_callback(statements.append)
    assert keys.authenticate(key) == Principal("alice", "user")
    assert any("FROM api_keys" in s for s in statements)
    statements.clear()
    assert keys.authenticate(key) == Principal("alice", "user")
    assert statements == []
    assert keys.authenticate(key + "x") is None  # an unknown key is read for, every time
    assert any("FROM api_keys" in s for s in statements)
    keys.close()


def test_without_a_wal_index_a_revocation_elsewhere_is_seen_by_data_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the file cannot be in WAL mode, `PRAGMA data_version` tells of other commits."""
    monkeypatch.setattr(WalHeader, "attach", lambda path: None)
    keys, other = (SQLiteKeyStore(tmp_path / "keys.sqlite3") for _ in range(2))
    key = keys.create("alice")
    for _ in range(2):
        assert keys.authenticate(key) == Principal("alice", "user")
    assert other.revoke(other.list()[0].key_id)
    assert keys.authenticate(key) is None
    keys.close()
    other.close()


def test_stores_on_one_file_share_its_wal_header_until_the_last_closes(tmp_path: Path) -> None:
    """Closing a descriptor drops the process's locks on the file (SQLite's too): one is
    opened per file, and closed with the last store, so the others keep seeing changes."""
    first, second, third = (SQLiteKeyStore(tmp_path / "keys.sqlite3") for _ in range(3))
    assert first._wal is not None and first._wal is second._wal is third._wal
    key = first.create("alice")
    assert first.authenticate(key) == Principal("alice", "user")
    second.close()
    assert third.revoke(third.list()[0].key_id)
    assert first.authenticate(key) is None
    first.close()
    third.close()
    assert not WalHeader._opened
