"""Both key stores pass the one contract: the SQLite file and the shared PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codeexec.adapters.sql_database import PostgresParams
from codeexec.adapters.sql_key_store import PostgresKeyStore, SQLiteKeyStore, SqlKeyStore
from codeexec.ports.key_store import KeyStore, key_digest
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
