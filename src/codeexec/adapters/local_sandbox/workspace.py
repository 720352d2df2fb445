"""The private work dir of a run on the host: a size-limited tmpfs, filled before the code runs."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import os
import shutil
import signal
import stat

from codeexec.adapters.local_sandbox import boxfs
from codeexec.adapters.local_sandbox.cgroups import process_alive
from codeexec.domain.model import SourceFile
from codeexec.ports.sandbox import SandboxError

_MS_NOSUID, _MS_NODEV = 0x2, 0x4
_MNT_DETACH, _UMOUNT_NOFOLLOW = 0x2, 0x8

_libc = ctypes.CDLL(None, use_errno=True)
_instances = itertools.count()


def _mount_tmpfs(target: str, options: str, flags: int = _MS_NOSUID | _MS_NODEV) -> None:
    if _libc.mount(b"codeexec-box", os.fsencode(target), b"tmpfs", flags, options.encode()):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _unmount(target: str) -> None:
    # Lazy and without following a symlink: the mount point is ours, its contents are not.
    if _libc.umount2(os.fsencode(target), _MNT_DETACH | _UMOUNT_NOFOLLOW) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, os.strerror(err), target)


class WorkRoot:
    """The host directory under which every run's work dir is made (root-owned, mode 0711)."""

    def __init__(self, path: str, size_bytes: int, *, mount: bool = True) -> None:
        self.path = path
        self.size_bytes = size_bytes
        self._can_mount: bool | None = None if mount else False
        self._prepared = False
        self._tag = next(_instances)
        self._etc: str | None = None
        self._dev: str | None = None
        self._dev_known = False

    @property
    def size_enforced(self) -> bool | None:
        """True once a size-limited tmpfs was mounted, False if mounting is not allowed here."""
        return self._can_mount

    def _prepare(self) -> None:
        if self._prepared:
            return
        os.makedirs(self.path, mode=0o711, exist_ok=True)
        st = os.lstat(self.path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise OSError(errno.EPERM, "work root is not a directory owned by us", self.path)
        os.chmod(self.path, 0o711)
        self._sweep_stale()
        self._prepared = True

    def _sweep_stale(self) -> None:
        """Remove work dirs left by a process of ours that died. Its running boxes died with
        it; one it had not yet released is still blocked (no code ran in it) and is killed."""
        stale = []
        for entry in os.listdir(self.path):
            owner, _, _ = entry.partition(".")
            if owner.isdigit() and int(owner) != os.getpid() and not process_alive(int(owner)):
                stale.append(os.path.join(self.path, entry))
        if stale:
            _kill_boxes_using(stale)
        for path in stale:
            with contextlib.suppress(OSError):
                _unmount(path)
            shutil.rmtree(path, ignore_errors=True)

    def probe_mount(self) -> bool:
        """Whether work dirs get a size-limited tmpfs here (tries once, then remembers)."""
        if self._can_mount is None:
            self._prepare()
            probe = os.path.join(self.path, f"{os.getpid()}.probe")
            os.makedirs(probe, 0o700, exist_ok=True)
            try:
                _mount_tmpfs(probe, "size=4096")
                _unmount(probe)
                self._can_mount = True
            except OSError:
                self._can_mount = False
            finally:
                os.rmdir(probe)
        return self._can_mount

    def etc(self) -> str:
        """The boxes' /etc (built on first use)."""
        if self._etc is None:
            self._prepare()
            self._etc = boxfs.build_etc(os.path.join(self.path, f"{os.getpid()}.etc{self._tag}"))
        return self._etc

    def dev(self) -> str | None:
        """The boxes' /dev, or None where we may not mount (bubblewrap then makes one)."""
        if not self._dev_known:
            self._dev_known = True
            if self.probe_mount():
                path = os.path.join(self.path, f"{os.getpid()}.dev{self._tag}")
                os.mkdir(path, 0o755)
                try:
                    _mount_tmpfs(path, "size=65536,nr_inodes=64,mode=0755", _MS_NOSUID)
                    self._dev = boxfs.build_dev(path)
                except OSError:
                    with contextlib.suppress(OSError):
                        _unmount(path)
                    os.rmdir(path)
        return self._dev

    def close(self) -> None:
        if self._etc is not None:
            shutil.rmtree(self._etc, ignore_errors=True)
            self._etc = None
        if self._dev is not None:
            with contextlib.suppress(OSError):
                _unmount(self._dev)
            shutil.rmtree(self._dev, ignore_errors=True)
            self._dev = None
        self._dev_known = False

    def create(self, name: str, uid: int) -> Workspace:
        self._prepare()
        path = os.path.join(self.path, name)
        os.mkdir(path, 0o700)
        if self._can_mount is not False:
            try:
                _mount_tmpfs(
                    path, f"size={self.size_bytes},nr_inodes=16384,mode=0711,uid={uid},gid={uid}"
                )
                self._can_mount = True
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EACCES) or self._can_mount:
                    os.rmdir(path)
                    raise
                self._can_mount = False
        if not self._can_mount and uid != os.geteuid():
            os.chown(path, uid, uid)
        # Traversable by root inside the box, which holds no DAC capability when bubblewrap
        # enters the directory; not listable by anyone but the run's user.
        os.chmod(path, 0o711)
        return Workspace(path, uid, mounted=bool(self._can_mount))


def check_names(files: tuple[SourceFile, ...]) -> None:
    """Refuse names that would leave the work dir ("..") or collide; before anything runs."""
    seen: set[str] = set()
    for source in files:
        parts = source.name.split("/")
        if any(part in ("", ".", "..") for part in parts) or source.name in seen:
            raise SandboxError(f"unsafe or duplicate file name {source.name!r}")
        seen.add(source.name)


def _kill_boxes_using(paths: list[str]) -> None:
    """SIGKILL every bubblewrap whose command line binds one of `paths`."""
    needles = [b"\0" + os.fsencode(p) + b"\0" for p in paths]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if any(n in cmdline for n in needles):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)


class Workspace:
    """One run's /box. The host writes into it only before any code ran in it, and removes it
    without following anything the code could have planted there."""

    def __init__(self, path: str, uid: int, *, mounted: bool) -> None:
        self.path = path
        self.uid = uid
        self.mounted = mounted

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
                    os.mkdir(d, 0o755, dir_fd=parent)
                    if self.uid != os.geteuid():
                        os.chown(d, self.uid, self.uid, dir_fd=parent, follow_symlinks=False)
                child = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
                os.close(parent)
                parent = child
            fd = os.open(
                leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=parent
            )
            try:
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
            _unmount(self.path)
        else:
            # fd-based on Linux (shutil.rmtree.avoids_symlink_attacks): symlinks are unlinked,
            # never followed.
            shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(self.path)


class UidPool:
    """Unprivileged user ids, one per active run, so per-uid limits count a single run and
    runs cannot signal or read one another."""

    def __init__(self, base: int, size: int) -> None:
        self.base, self.size = base, size
        self._free = list(range(base + size - 1, base - 1, -1))

    def acquire(self) -> int:
        if not self._free:
            raise SandboxError(f"all {self.size} sandbox user ids are in use")
        return self._free.pop()

    def release(self, uid: int) -> None:
        if self.base <= uid < self.base + self.size and uid not in self._free:
            self._free.append(uid)
