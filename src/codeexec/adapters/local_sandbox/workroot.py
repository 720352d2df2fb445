"""The host directory of one sandbox instance: the boxes' /etc and /dev, one work dir per run,
and, on every start, the removal of what dead instances left (work dirs, mounts, boxes).

    <root>/            mode 0700, shared by every instance that uses this root
      <id>.lock        held (flock) by the live instance <id>; free once it died
      <id>/            mode 0700; a tmpfs where we may mount, so no host path shows in a
        etc/ dev/      box's /proc/self/mountinfo
        <run>/         a run's /box: mode 0700, owned by the run's uid (its own tmpfs)

Names are random: nothing on the host says which server made them or when.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import stat

from codeexec.adapters.local_sandbox import boxfs, ownership
from codeexec.adapters.local_sandbox.cgroups import process_alive
from codeexec.adapters.local_sandbox.recipes import BOX
from codeexec.adapters.local_sandbox.workspace import Workspace, mount_tmpfs, unmount

_MS_NOSUID = 0x2
_INSTANCE = re.compile(r"^([0-9a-f]{16})(\.lock)?$")
_LEGACY = re.compile(r"^(\d+)\.(\d+|etc\d+|dev\d+|probe)$")
"""Names of versions that told liveness by pid: `<pid>.<n>`."""
_SHARED = ("etc", "dev")


class WorkRoot:
    """The host side of one sandbox instance's boxes (see the module docstring)."""

    def __init__(self, path: str, size_bytes: int, *, mount: bool = True) -> None:
        self.path = path
        self.size_bytes = size_bytes
        self._mount = mount
        self._mounted: bool | None = None
        self._lock: int | None = None
        self._dir = ""
        self._etc: str | None = None
        self._dev: str | None = None
        self._dev_known = False

    def _prepare(self) -> None:
        if self._lock is not None:
            return
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        st = os.lstat(self.path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise OSError(errno.EPERM, "work root is not a directory owned by us", self.path)
        os.chmod(self.path, 0o700)
        sweep_dead(self.path)
        for _ in range(8):  # another instance's sweep may take a fresh lock first: pick anew
            ident = ownership.new_id()
            self._lock = ownership.hold(os.path.join(self.path, f"{ident}.lock"), directory=False)
            if self._lock is not None:
                break
        else:
            raise OSError(errno.EAGAIN, "could not claim an instance name", self.path)
        self._dir = os.path.join(self.path, ident)
        try:
            os.mkdir(self._dir, 0o700)
            self._mounted = False
            if self._mount:
                try:
                    mount_tmpfs(self._dir, "size=64m,mode=0700", _MS_NOSUID)  # dev/ has devices
                    self._mounted = True
                except OSError as exc:
                    if exc.errno not in (errno.EPERM, errno.EACCES):
                        raise
            os.chmod(self._dir, 0o700)
        except BaseException:
            self.close()
            raise

    def probe_mount(self) -> bool:
        """Whether work dirs get a size-limited tmpfs here."""
        self._prepare()
        return bool(self._mounted)

    def etc(self) -> str:
        """The boxes' /etc (built on first use)."""
        if self._etc is None:
            self._prepare()
            self._etc = boxfs.build_etc(os.path.join(self._dir, "etc"))
        return self._etc

    def dev(self) -> str | None:
        """The boxes' /dev, or None where we may not mount (bubblewrap then makes one)."""
        if not self._dev_known:
            self._dev_known = True
            if self.probe_mount():
                path = os.path.join(self._dir, "dev")
                os.mkdir(path, 0o755)
                self._dev = boxfs.build_dev(path)
        return self._dev

    def create(self, name: str, uid: int) -> Workspace:
        self._prepare()
        path = os.path.join(self._dir, name)
        os.mkdir(path, 0o700)
        try:
            if self._mounted:
                # Owned by a chown, not a uid= option, so a work dir made ahead for a box
                # (root's until its run) looks the same in the box's mountinfo.
                mount_tmpfs(path, f"size={self.size_bytes},nr_inodes=16384,mode=0700")
            if uid != os.geteuid():
                os.chown(path, uid, uid)
            # Owner only. bubblewrap enters it as root without DAC capabilities: it is given
            # CAP_DAC_READ_SEARCH for that, which setpriv drops before the code starts.
            os.chmod(path, 0o700)
        except BaseException:
            with contextlib.suppress(OSError):
                unmount(path)
            os.rmdir(path)
            raise
        return Workspace(path, uid, mounted=bool(self._mounted))

    def close(self) -> None:
        """Remove this instance's directory and give up its name."""
        if self._lock is None:
            return
        _remove_instance(self._dir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._dir + ".lock")
        os.close(self._lock)
        self._lock = None
        self._etc = self._dev = None
        self._dev_known = False


def sweep_dead(root: str) -> None:
    """Remove what instances that died left under `root`: their boxes still blocked before
    the go (no code ran in them), their mounts and their directories. Live instances, which
    hold their lock, are left alone, whatever their pid or age."""
    entries = os.listdir(root)
    for ident in sorted({m.group(1) for e in entries if (m := _INSTANCE.match(e))}):
        lock = os.path.join(root, f"{ident}.lock")
        taken = ownership.take_if_dead(lock)
        if taken is None and os.path.lexists(lock):
            continue  # alive (or being swept by another instance right now)
        try:
            _remove_instance(os.path.join(root, ident))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
        finally:
            if taken is not None:
                os.close(taken)
    legacy = [
        os.path.join(root, e)
        for e in entries
        if (m := _LEGACY.match(e)) and not process_alive(int(m.group(1)))
    ]
    _kill_boxes_of(legacy)
    for path in legacy:
        _remove(path)


def _remove_instance(directory: str) -> None:
    if not os.path.isdir(directory):
        return
    runs = [os.path.join(directory, e) for e in os.listdir(directory) if e not in _SHARED]
    _kill_boxes_of(runs)
    for path in runs:
        _remove(path)
    _remove(directory)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        unmount(path)
    # fd-based: a symlink the code planted is unlinked, never followed.
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _kill_boxes_of(work_dirs: list[str]) -> None:
    """SIGKILL every process whose /box is one of `work_dirs` (a box whose supervisor died
    before it said go stays blocked, holding the work dir, until it is killed)."""
    wanted = set()
    for path in work_dirs:
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            wanted.add((st.st_dev, st.st_ino))
    if not wanted:
        return
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/root{BOX}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in wanted:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)
