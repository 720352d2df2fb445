"""WalHeader: whether a SQLite file in WAL mode has changed, read without a query.

Every commit to a WAL database, by any connection in any process, rewrites the wal-index
header: the first 48 bytes of the `-shm` file (a change counter, the last valid frame, the
salts and checksums; https://sqlite.org/walformat.html, "The WAL-Index Header"). Reading
them from a shared mapping takes a fraction of a microsecond and keeps the interpreter lock,
where any SQLite call, `PRAGMA data_version` included, releases it, and a thread that
released it under load waits for it again behind the busy one (the event loop behind the
store thread).

A descriptor's close drops every POSIX lock its process holds on the file, SQLite's own locks
on the `-shm` included. So each file is opened once per process, shared by its users, and
closed only when the last of them releases it, after closing its connection; and only while
a connection is open (it keeps the `-shm` in place: SQLite replaces it only when no
connection has it)."""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path
from typing import ClassVar

HEADER = 48  # bytes: the wal-index header's first copy


class WalHeader:
    _lock: ClassVar = threading.Lock()
    _opened: ClassVar[dict[tuple[int, int], WalHeader]] = {}  # (device, inode) -> the one

    def __init__(self, key: tuple[int, int], fd: int) -> None:
        self._key, self._fd = key, fd
        self._map = mmap.mmap(fd, HEADER, access=mmap.ACCESS_READ)
        self._users = 0

    @classmethod
    def attach(cls, database: Path) -> WalHeader | None:
        """The header of `database`'s wal-index, for a user that holds a connection to it
        open; None when there is no `-shm` (not in WAL mode). `release` it once, after
        closing that connection."""
        shm = f"{database}-shm"
        with cls._lock:
            try:
                found = os.stat(shm)  # not a descriptor: closing a spare one would drop locks
            except FileNotFoundError:
                return None
            if found.st_size < HEADER:  # not initialised: mapping it would fail, after open
                return None
            key = (found.st_dev, found.st_ino)
            header = cls._opened.get(key)
            if header is None:
                header = cls._opened[key] = WalHeader(key, os.open(shm, os.O_RDONLY))
            header._users += 1
            return header

    def read(self) -> bytes:
        """The header as it is now: different after every commit since the last read."""
        return self._map[:HEADER]

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                del self._opened[self._key]
                self._map.close()
                os.close(self._fd)
