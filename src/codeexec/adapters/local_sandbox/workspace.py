"""The private work dir of a run on the host: a size-limited tmpfs, filled before the code runs.

It is mode 0700, owned by the run's uid, and so are the directories in it; files are 0600:
whatever the server's umask, no other local user reads a submission."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil

from codeexec.domain.model import SourceFile
from codeexec.ports.sandbox import SandboxError

_MS_NOSUID, _MS_NODEV = 0x2, 0x4
_MNT_DETACH, _UMOUNT_NOFOLLOW = 0x2, 0x8

_libc = ctypes.CDLL(None, use_errno=True)


def mount_tmpfs(target: str, options: str, flags: int = _MS_NOSUID | _MS_NODEV) -> None:
    if _libc.mount(b"codeexec-box", os.fsencode(target), b"tmpfs", flags, options.encode()):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def unmount(target: str) -> None:
    # Lazy and without following a symlink: the mount point is ours, its contents are not.
    if _libc.umount2(os.fsencode(target), _MNT_DETACH | _UMOUNT_NOFOLLOW) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, os.strerror(err), target)


def check_names(files: tuple[SourceFile, ...]) -> None:
    """Refuse names that would leave the work dir ("..") or collide; before anything runs."""
    seen: set[str] = set()
    for source in files:
        parts = source.name.split("/")
        if any(part in ("", ".", "..") for part in parts) or source.name in seen:
            raise SandboxError(f"unsafe or duplicate file name {source.name!r}")
        seen.add(source.name)


class Workspace:
    """One run's /box. The host writes into it only before any code ran in it, and removes it
    without following anything the code could have planted there."""

    def __init__(self, path: str, uid: int, *, mounted: bool) -> None:
        self.path = path
        self.uid = uid
        self.mounted = mounted

    def give_to(self, uid: int) -> None:
        """Hand a work dir made ahead (root's, empty, no code ran with it) to the run's uid."""
        os.chown(self.path, uid, uid, follow_symlinks=False)
        self.uid = uid

    def write(self, files: tuple[SourceFile, ...]) -> None:
        check_names(files)
        root = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for source in files:
                self._write_one(root, source)
        finally:
            os.close(root)

    def _write_one(self, root: int, source: SourceFile) -> None:
        *dirs, leaf = source.name.split("/")
        parent = os.dup(root)
        try:
            for d in dirs:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(d, 0o700, dir_fd=parent)
                    if self.uid != os.geteuid():
                        os.chown(d, self.uid, self.uid, dir_fd=parent, follow_symlinks=False)
                child = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
                os.close(parent)
                parent = child
                os.fchmod(parent, 0o700)  # the mode asked for, not what the umask left of it
            fd = os.open(
                leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=parent
            )
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(source.content)
                while view:
                    view = view[os.write(fd, view) :]
                if self.uid != os.geteuid():
                    os.fchown(fd, self.uid, self.uid)
            finally:
                os.close(fd)
        finally:
            os.close(parent)

    def remove(self) -> None:
        if self.mounted:
            unmount(self.path)
        else:
            # fd-based on Linux (shutil.rmtree.avoids_symlink_attacks): symlinks are unlinked,
            # never followed.
            shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(self.path)
