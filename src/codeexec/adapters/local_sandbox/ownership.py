"""Which sandbox instance on this host is alive: each holds an exclusive flock on a path it
made, for as long as it lives. The kernel drops the lock the moment the process dies, however
it died and whoever gets its pid next, so a successor can tell leftovers from live work."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets


def new_id() -> str:
    """An instance or run name: random, so nothing on the host is guessable from it; never
    all digits, which earlier versions read as the pid of the owner."""
    while (ident := secrets.token_hex(8)).isdigit():
        pass
    return ident


def _locked_here(fd: int, path: str) -> bool:
    # Locked, and still what `path` names: a sweeper may have removed it between our open
    # and our lock (then the lock is on an orphan and means nothing).
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        st, now = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)


def hold(path: str, *, directory: bool) -> int | None:
    """Make `path` (a directory or an empty file, mode 0700/0600) and lock it; the fd is the
    claim, closing it ends the claim. None if another process got it first."""
    try:
        if directory:
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        else:
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(path, flags, 0o600)
    except OSError:
        return None
    if _locked_here(fd, path):
        return fd
    os.close(fd)
    return None


def take_if_dead(path: str) -> int | None:
    """Lock `path` if the instance that made it is gone: the caller removes what it owned,
    `path` last, then closes the fd. None while its owner lives (or if it is gone already)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    if _locked_here(fd, path):
        return fd
    os.close(fd)
    return None
