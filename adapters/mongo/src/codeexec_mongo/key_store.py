"""MongoKeyStore: API key hashes in the `api_keys` collection, shared by every API process.

Documents: `{_id: key_id, digest, user_id, role, created_at, revoked_at}` (times are Unix
seconds as doubles; `revoked_at` null until revoked). `digest` is unique (the lookup of every
authenticated request). A key itself is never stored, only its sha256."""

from __future__ import annotations

import builtins
import time
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, MongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.database import Database

from codeexec.ports.key_store import (
    KeyRecord,
    KeyStore,
    Principal,
    Role,
    key_digest,
    new_key,
)
from codeexec_mongo.queries import async_database
from codeexec_mongo.recorders import translated_errors
from codeexec_mongo.settings import MongoSettings


class MongoKeyStore(KeyStore):
    def __init__(self, settings: MongoSettings) -> None:
        self._settings = settings
        self._async_keys: AsyncCollection[dict[str, Any]] | None = None
        self._async_client: AsyncMongoClient[dict[str, Any]] | None = None
        write_concern, read_concern = settings.concerns()
        self._client: MongoClient[dict[str, Any]] = MongoClient(settings.url, appname="codeexec")
        db: Database[dict[str, Any]] = self._client.get_database(
            settings.db, write_concern=write_concern, read_concern=read_concern
        )
        self.keys = db["api_keys"]
        with translated_errors():
            self.keys.create_index([("digest", ASCENDING)], name="digest", unique=True)
            self.keys.create_index([("created_at", ASCENDING)], name="created_at")

    def create(self, user_id: str, role: Role = "user") -> str:
        made = new_key(user_id, role)
        document = {
            "_id": made.key_id,
            "digest": made.digest,
            "user_id": user_id,
            "role": role,
            "created_at": made.created_at,
            "revoked_at": None,
        }
        with translated_errors():
            self.keys.insert_one(document)
        return made.key

    def authenticate(self, key: str) -> Principal | None:
        with translated_errors():
            found = self.keys.find_one(_live(key))
        return None if found is None else Principal(found["user_id"], found["role"])

    async def lookup(self, key: str) -> Principal | None:
        """Every request's check, on pymongo's asyncio client (made on first use, on the
        loop that awaits it)."""
        if self._async_keys is None:
            self._async_client, database = async_database(self._settings)
            self._async_keys = database["api_keys"]
        with translated_errors():
            found = await self._async_keys.find_one(_live(key))
        return None if found is None else Principal(found["user_id"], found["role"])

    def list(self) -> builtins.list[KeyRecord]:
        with translated_errors():
            found = self.keys.find().sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            return [
                KeyRecord(d["_id"], d["user_id"], d["role"], float(d["created_at"]), _time(d))
                for d in found
            ]

    def revoke(self, key_id: str) -> bool:
        with translated_errors():
            result = self.keys.update_one(
                {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": time.time()}}
            )
        return result.modified_count > 0

    def is_empty(self) -> bool:
        with translated_errors():
            return self.keys.find_one({}, {"_id": 1}) is None

    def close(self) -> None:
        self._client.close()
        # The asyncio client is left to its loop: it closes when that loop's tasks end.


def _live(key: str) -> dict[str, Any]:
    """The filter of the key's unrevoked record (by the unique digest index)."""
    return {"digest": key_digest(key), "revoked_at": None}


def _time(document: dict[str, Any]) -> float | None:
    value = document.get("revoked_at")
    return None if value is None else float(value)
