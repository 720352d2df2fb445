"""The data dir is private to the server's user: 0700, its files 0600, whatever the umask.

It holds every user's source, input and output (the event store) and the API key hashes, so
no other local user may read it. Files are created with their final mode (SQLite gives its
-wal and -shm files the mode of their database), and a dir left too open by an older version
or a loose umask is tightened on start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_OTHERS = 0o077  # group and other permission bits


class DataDirUnsafe(ValueError):
    """The data dir cannot be made private (a shared directory such as /tmp)."""


def private_dir(path: Path) -> Path:
    """Create `path` with mode 0700, or tighten it to 0700; take group and other access
    off everything directly in it. A shared directory (sticky bit, like /tmp) is refused:
    the data needs a directory of its own."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    mode = path.stat().st_mode
    if mode & stat.S_ISVTX:
        raise DataDirUnsafe(
            f"{path} is a shared directory (sticky bit set); give the data a directory of its own"
        )
    if stat.S_IMODE(mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_symlink():
                continue  # its target is not ours to change
            entry_mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
            if entry_mode & _OTHERS:
                os.chmod(entry.path, entry_mode & ~_OTHERS)
    return path


def private_file(path: Path) -> Path:
    """Make sure `path` exists (empty if new) with mode 0600, before anyone (SQLite) opens it
    with a mode of its own."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)  # the umask may have taken bits off, or it existed
    finally:
        os.close(fd)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically; the file has mode 0600."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
