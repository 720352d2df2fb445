"""The data dir: private to its user whatever the umask; a corrupt store fails start cleanly."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from codeexec_server.keystore import KeyStore
from codeexec_server.limits import LimitsDocument, LimitsPolicy, ResourceMaxima

from codeexec.data_dir import DataDirUnsafe
from codeexec.runtime import StoreUnreadable, check_store, lock_data_dir
from tests.unit.factories import runtime, script


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_every_file_of_the_data_dir_is_private_even_with_umask_000(
    tmp_path: Path, open_umask: None
) -> None:
    data_dir = tmp_path / "data"
    keys = KeyStore.in_data_dir(data_dir)
    keys.create("alice")
    policy = LimitsPolicy(
        data_dir / "limits.json",
        LimitsDocument(max_resource_limits=ResourceMaxima()),
    )
    async with runtime(data_dir=data_dir) as cx:
        await policy.attach(cx)
        await policy.replace(policy.document, "admin")  # limits: events in the store
        view = await cx.submit("alice", script("out hi"))
        await cx.wait(view.id, timeout=5)
        names = {p.name for p in data_dir.iterdir()}
        # SQLite made its write-ahead log and shared memory while we ran: they count too.
        assert {"events.sqlite3-wal", "events.sqlite3-shm", "keys.sqlite3-wal"} <= names
        assert mode(data_dir) == 0o700
        assert {p.name: mode(p) for p in data_dir.iterdir()} == dict.fromkeys(names, 0o600)
    keys.close()
    assert {"events.sqlite3", "keys.sqlite3", "runtime.lock", "worker_id"} <= {
        p.name for p in data_dir.iterdir()
    }
    assert all(mode(p) == 0o600 for p in data_dir.iterdir())


async def test_a_data_dir_left_open_is_tightened_on_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with runtime(data_dir=data_dir):
        pass
    os.chmod(data_dir, 0o755)
    for path in data_dir.iterdir():
        os.chmod(path, 0o644)
    async with runtime(data_dir=data_dir):
        assert mode(data_dir) == 0o700
        assert all(mode(p) == 0o600 for p in data_dir.iterdir())


def test_a_shared_directory_is_refused_as_data_dir(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    with pytest.raises(DataDirUnsafe, match="shared directory"):
        lock_data_dir(shared)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
async def test_a_corrupt_store_fails_start_with_the_file_and_cause_and_releases_the_lock(
    tmp_path: Path, damage: str
) -> None:
    database = tmp_path / "events.sqlite3"
    if damage == "garbage":
        database.write_bytes(b"\x8f not a database, just bytes " * 512)
    else:
        async with runtime(data_dir=tmp_path) as cx:
            for _ in range(200):
                await cx.submit("alice", script("out " + "x" * 200))
        os.truncate(database, database.stat().st_size // 2)
    with pytest.raises(StoreUnreadable, match=r"events\.sqlite3") as unreadable:
        check_store(tmp_path)
    assert unreadable.value.cause
    with pytest.raises(StoreUnreadable, match=r"events\.sqlite3"):
        await runtime(data_dir=tmp_path).start()
    lock_data_dir(tmp_path).close()  # the failed start left the dir unlocked
