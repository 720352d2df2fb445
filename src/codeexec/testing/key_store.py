"""The KeyStore contract: what every key store must do, written once.

A test module subclasses `KeyStoreContract` and provides `new_key_store` (a factory of fresh,
empty key stores) and `reopen_key_store` (another store on the storage `new_key_store` made
last, as another process would open it)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from codeexec.ports.key_store import KEY_PREFIX, KeyStore, Principal

NewKeyStore = Callable[[], KeyStore]


class KeyStoreContract:
    def test_a_new_key_authenticates_its_user(self, new_key_store: NewKeyStore) -> None:
        keys = new_key_store()
        assert keys.is_empty()
        key = keys.create("alice")
        admin = keys.create("root", "admin")
        assert key.startswith(KEY_PREFIX) and len(key) > 40 and key != admin
        assert keys.authenticate(key) == Principal("alice", "user")
        assert keys.authenticate(admin) == Principal("root", "admin")
        assert keys.authenticate(admin).is_admin  # type: ignore[union-attr]
        assert keys.authenticate(key + "x") is None
        assert keys.authenticate("") is None
        assert not keys.is_empty()

    async def test_the_event_loops_lookup_answers_as_authenticate(
        self, new_key_store: NewKeyStore
    ) -> None:
        keys = new_key_store()
        key, admin, revoked = keys.create("alice"), keys.create("root", "admin"), keys.create("x")
        keys.revoke(next(r.key_id for r in keys.list() if r.user_id == "x"))
        assert await keys.lookup(key) == Principal("alice", "user")
        assert await keys.lookup(admin) == Principal("root", "admin")
        assert await keys.lookup(revoked) is None
        assert await keys.lookup(key + "x") is None
        assert await keys.lookup("") is None

    def test_records_list_keys_but_never_the_keys(self, new_key_store: NewKeyStore) -> None:
        keys = new_key_store()
        made = [keys.create("alice"), keys.create("bob", "admin")]
        records = keys.list()
        assert [(r.user_id, r.role, r.revoked_at) for r in records] == [
            ("alice", "user", None),
            ("bob", "admin", None),
        ]
        assert len({r.key_id for r in records}) == 2
        assert records[0].created_at <= records[1].created_at
        assert not any(key in repr(records) for key in made)

    def test_a_revoked_key_no_longer_authenticates(self, new_key_store: NewKeyStore) -> None:
        keys = new_key_store()
        key, other = keys.create("alice"), keys.create("bob")
        key_id = next(r.key_id for r in keys.list() if r.user_id == "alice")
        assert keys.revoke(key_id)
        assert keys.authenticate(key) is None
        assert keys.authenticate(other) == Principal("bob", "user")
        assert not keys.revoke(key_id)  # twice: nothing to do
        assert not keys.revoke("no-such-key")
        revoked = {r.user_id: r.revoked_at for r in keys.list()}
        assert revoked["alice"] is not None and revoked["bob"] is None

    def test_another_process_sees_keys_and_revocations(
        self, new_key_store: NewKeyStore, reopen_key_store: NewKeyStore
    ) -> None:
        keys = new_key_store()
        key = keys.create("alice")
        other = reopen_key_store()
        assert other.authenticate(key) == Principal("alice", "user")
        assert other.revoke(other.list()[0].key_id)
        assert keys.authenticate(key) is None

    async def test_a_key_seen_before_is_refused_once_revoked_here(
        self, new_key_store: NewKeyStore
    ) -> None:
        keys = new_key_store()
        key, other = keys.create("alice"), keys.create("bob")
        for _ in range(2):  # seen, and seen again (a store may remember it)
            assert await keys.lookup(key) == Principal("alice", "user")
            assert keys.authenticate(other) == Principal("bob", "user")
        assert keys.revoke(next(r.key_id for r in keys.list() if r.user_id == "alice"))
        assert await keys.lookup(key) is None
        assert keys.authenticate(key) is None
        assert keys.authenticate(other) == Principal("bob", "user")

    async def test_a_key_seen_before_is_refused_once_another_process_revokes_it(
        self, new_key_store: NewKeyStore, reopen_key_store: NewKeyStore
    ) -> None:
        keys = new_key_store()
        key, admin = keys.create("alice"), keys.create("root", "admin")
        for _ in range(2):
            assert await keys.lookup(key) == Principal("alice", "user")
            assert await keys.lookup(admin) == Principal("root", "admin")
        other = reopen_key_store()
        assert other.revoke(next(r.key_id for r in other.list() if r.user_id == "alice"))
        assert await keys.lookup(key) is None
        assert keys.authenticate(key) is None
        assert await keys.lookup(admin) == Principal("root", "admin")
        again = other.create("alice")  # a key made elsewhere after the revocation works here
        assert await keys.lookup(again) == Principal("alice", "user")

    @pytest.mark.parametrize(("user", "role"), [("", "user"), ("u" * 129, "user"), ("a", "root")])
    def test_bad_users_and_roles_are_refused(
        self, new_key_store: NewKeyStore, user: str, role: str
    ) -> None:
        keys = new_key_store()
        with pytest.raises(ValueError):
            keys.create(user, role)  # type: ignore[arg-type]
        assert keys.is_empty()
