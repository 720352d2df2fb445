"""The sandbox uids of one instance: a range of its own, claimed host-wide for its whole life.

Every instance on the host locks the bytes of one lock file whose offsets are the uids it
runs code as (open-file-description locks, so two instances in one process conflict too,
and ranges of differently configured instances conflict exactly where they overlap). The
kernel releases the lock when the instance dies, and the range is free for the next one.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import struct
from dataclasses import dataclass

from codeexec.ports.sandbox import SandboxError, SandboxUnavailable

DEFAULT_LOCK_FILE = "/run/codeexec/sandbox-uids.lock"
_FLOCK = "hhqqi4x"  # struct flock: type, whence, start, len, pid (0 for OFD locks)


def _set_lock(fd: int, kind: int, start: int, length: int) -> bool:
    arg = struct.pack(_FLOCK, kind, os.SEEK_SET, start, length, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, arg)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _processes_in(first: int, count: int) -> bool:
    """Whether any process on the host runs as a uid of [first, first + count)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as f:
                status = f.read()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith(b"Uid:"):
                if any(first <= int(uid) < first + count for uid in line.split()[1:]):
                    return True
                break
    return False


@dataclass
class UidRange:
    """uids [first, first + count), this instance's alone until `release()`."""

    first: int
    count: int
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # drops the lock
            self.fd = -1


def claim(lock_file: str, base: int, count: int, ranges: int) -> UidRange:
    """The first range [base + i * count, + count), i < ranges, that no live instance holds
    and in which no process runs (leftovers of a dead owner keep theirs out of use)."""
    parent = os.path.dirname(lock_file)
    os.makedirs(parent, 0o700, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            raise SandboxUnavailable(f"the sandbox uid lock {lock_file} is not owned by us")
        for i in range(ranges):
            first = base + i * count
            if not _set_lock(fd, fcntl.F_WRLCK, first, count):
                continue
            if _processes_in(first, count):
                _set_lock(fd, fcntl.F_UNLCK, first, count)
                continue
            return UidRange(first, count, fd)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    raise SandboxUnavailable(
        f"every sandbox uid range ({ranges} of {count} uids from {base}) is held by another "
        f"live sandbox on this host (see {lock_file}); stop one or allow more ranges"
    )


class InstanceUids:
    """The uids one sandbox instance runs code as, one per active run (so per-uid limits
    count a single run, and runs cannot signal or read one another): its range is claimed
    on first use, [base + i * count, + count) for the first free i < ranges."""

    def __init__(self, lock_file: str, base: int, count: int, ranges: int) -> None:
        self.lock_file, self.base, self.count, self.ranges = lock_file, base, count, ranges
        self._claimed: UidRange | None = None
        # Handed out oldest-released first: a uid comes back only after every other uid of
        # the range ran once since, however briefly its last run ended before.
        self._free: collections.deque[int] = collections.deque()
        self._free_set: set[int] = set()

    @property
    def held(self) -> range | None:
        """The claimed range (None until the first run)."""
        c = self._claimed
        return None if c is None else range(c.first, c.first + c.count)

    def claim(self) -> None:
        if self._claimed is None:
            self._claimed = claim(self.lock_file, self.base, self.count, self.ranges)
            first = self._claimed.first
            self._free = collections.deque(range(first, first + self.count))
            self._free_set = set(self._free)

    def acquire(self) -> int:
        self.claim()
        if not self._free:
            raise SandboxError(f"all {self.count} sandbox user ids are in use")
        uid = self._free.popleft()
        self._free_set.discard(uid)
        return uid

    def release(self, uid: int) -> None:
        mine = self.held
        if mine is not None and uid in mine and uid not in self._free_set:
            self._free.append(uid)
            self._free_set.add(uid)

    def close(self) -> None:
        if self._claimed is not None:
            self._claimed.release()
            self._claimed = None
            self._free.clear()
            self._free_set.clear()

    def describe(self) -> str:
        mine = self.held
        held = f"{mine.start}-{mine.stop - 1}" if mine else "claimed at the first run"
        return (
            f"one uid per active run (the one released longest ago) from this instance's own "
            f"range ({held}): the first "
            f"free of {self.ranges} ranges of {self.count} from {self.base}, held host-wide "
            f"in {self.lock_file} for the instance's life"
        )
