"""API keys for the server: the KeyStore port (codeexec.ports.key_store) and, by default, its
SQLite file in the data dir. With CODEEXEC_STORE=postgres the composition root opens the
shared store's instead (`StoreConfig.key_store()`)."""

from __future__ import annotations

from pathlib import Path

from codeexec.adapters.sql_key_store import SQLiteKeyStore
from codeexec.ports.key_store import KEY_PREFIX, KeyRecord, Principal, Role

__all__ = ["KEY_PREFIX", "KeyRecord", "KeyStore", "Principal", "Role"]


class KeyStore(SQLiteKeyStore):
    """Keys are shown once at creation; only their hashes are stored."""

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> KeyStore:
        return cls(data_dir / "keys.sqlite3")
