"""The key-store port: API keys, shown once at creation and kept only as sha256 hashes."""

from __future__ import annotations

import builtins
import hashlib
import secrets
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "admin"]
ROLES: tuple[Role, ...] = ("user", "admin")
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


def key_digest(key: str) -> str:
    """What is stored instead of a key: its sha256 (keys are random, so no salt is needed)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_new_key(user_id: str, role: str) -> None:
    if not user_id or len(user_id) > 128:
        raise ValueError("user id must be 1-128 characters")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")


@dataclass(frozen=True)
class NewKey:
    """A key as it is made: `key` is shown once; a store keeps the rest (never the key)."""

    key: str
    key_id: str
    digest: str
    created_at: float


def new_key(user_id: str, role: str) -> NewKey:
    """A random key for the user (ValueError for a bad user or role), as every store makes it."""
    check_new_key(user_id, role)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(key, secrets.token_hex(6), key_digest(key), time.time())


class KeyStore(ABC):
    @abstractmethod
    def create(self, user_id: str, role: Role = "user") -> str:
        """A new key for the user, returned this once; ValueError for a bad user or role."""

    @abstractmethod
    def authenticate(self, key: str) -> Principal | None:
        """Whose key this is, or None (unknown or revoked)."""

    async def lookup(self, key: str) -> Principal | None:
        """`authenticate` on the event loop (every request). A local store answers in place:
        a SQLite read takes ~25 us, a hop to a thread ~150 us more (bench/key_store_bench.py).
        A store across the network overrides this with an async driver or a thread, so a
        slow database delays the requests that wait for it, not every request."""
        return self.authenticate(key)

    @abstractmethod
    def list(self) -> builtins.list[KeyRecord]:
        """Every key's record (never the key), oldest first."""

    @abstractmethod
    def revoke(self, key_id: str) -> bool:
        """False when there is no such key or it was revoked before."""

    @abstractmethod
    def is_empty(self) -> bool: ...

    def close(self) -> None:
        """Release connections."""
