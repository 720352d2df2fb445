"""Opening a process's event store: the data dir's lock, a check of the file, the store."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from codeexec.adapters import sqlite_store
from codeexec.data_dir import private_dir, private_file

EVENTS_FILE = "events.sqlite3"


class DataDirInUse(RuntimeError):
    """Another embedded runtime already runs on this data dir."""


class StoreUnreadable(RuntimeError):
    """The event store cannot be opened or read (a corrupt or half-written file)."""

    def __init__(self, store: str, cause: str) -> None:
        """`store`: the store as a message names it ("the event store /data/events.sqlite3")."""
        super().__init__(f"{store} cannot be read: {cause}")
        self.store, self.cause = store, cause


def check_store(data_dir: Path) -> None:
    """Before announcing a server: raise StoreUnreadable if the data dir's event store is
    corrupt or half-written (it reads every page, so start-up fails early, in one line)."""
    path = data_dir / EVENTS_FILE
    problem = sqlite_store.check_database(path)
    if problem is not None:
        raise StoreUnreadable(f"the event store {path}", problem)


def lock_data_dir(data_dir: Path) -> IO[str]:
    """One embedded runtime per data dir (its roles assume they are alone): take the
    dir's lock, held until the returned file is closed. Raises DataDirInUse. The dir is
    made private to this user first (DataDirUnsafe if it is a shared one)."""
    private_dir(data_dir)
    lock = private_file(data_dir / "runtime.lock")
    handle = open(lock, "r+")  # noqa: SIM115 (held until stop)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise DataDirInUse(f"{data_dir} is in use by {owner}; stop it or choose another") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle
