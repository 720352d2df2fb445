"""Inside the zygote: the root of a box, built with the operations bubblewrap performs.

The same list of operations (see boxcommand.box_ops) drives bubblewrap on the cold path; here
each is done as bubblewrap does it: binds recursive with nosuid (and nodev, ro) on every mount,
a private /proc with its kernel knobs read-only, size-limited tmpfs, and the two pivots that
leave nothing of the host reachable."""

from __future__ import annotations

import ctypes
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from codeexec.adapters.local_sandbox.zygote import codeexec_zygote as zy
else:
    import codeexec_zygote as zy

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_SILENT = 0x20, 0x1000, 0x4000, 0x8000
MS_PRIVATE, MS_SLAVE = 0x40000, 0x80000
MNT_DETACH = 0x2
_SYS_PIVOT_ROOT = 155
# statvfs f_flag bits -> mount flags, to keep what a bind mount's source already has.
_ST_TO_MS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 0x400, 2048: 0x800}
_ST_RELATIME, _MS_RELATIME = 4096, 0x200000
_PROC_COVERS = ("sys", "sysrq-trigger", "irq", "bus")


def mount(src: str | None, dest: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = [None if s is None else os.fsencode(s) for s in (src, dest, fstype, data)]
    zy.check(zy.libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {dest}")


def _remount(dest: str, add: int) -> None:
    """Add `add` to the flags of the mount at `dest`, keeping those it has (bwrap's way)."""
    st = os.statvfs(dest).f_flag
    current = sum(ms for bit, ms in _ST_TO_MS.items() if st & bit)
    current |= _MS_RELATIME if st & _ST_RELATIME else 0
    if current | add != current:
        mount("none", dest, None, MS_SILENT | MS_BIND | MS_REMOUNT | current | add, None)


_proc_fd = -1
"""The host's /proc, opened before the root moves (as bubblewrap keeps its proc_fd)."""


_host_mounts: list[str] = []
"""Mount points on the host when the box's root is built (to spot binds with submounts)."""


def _mount_points() -> list[str]:
    fd = os.open("self/mountinfo", os.O_RDONLY | os.O_CLOEXEC, dir_fd=_proc_fd)
    with open(fd, "rb") as f:
        lines = f.read().decode("utf-8", "surrogateescape").splitlines()
    return [line.split(" ")[4].replace("\\040", " ") for line in lines]


def _below(points: list[str], top: str) -> list[str]:
    prefix = top.rstrip("/") + "/"
    return list(dict.fromkeys(p for p in points if p == top or p.startswith(prefix)))


def _bind(src: str, dest: str, *, readonly: bool, devices: bool, host: str = "") -> None:
    """A recursive bind whose every mount gets nosuid (and nodev, ro), as bubblewrap's."""
    mount(src, dest, None, MS_SILENT | MS_BIND | MS_REC, None)
    add = MS_NOSUID | (0 if devices else MS_NODEV) | (MS_RDONLY if readonly else 0)
    points = [dest]
    if host and len(_below(_host_mounts, host)) > 1:  # rare: mounts below the source
        points = _below(_mount_points(), os.path.realpath(dest))
    for point in points:
        _remount(point, add)


def _ensure_dir(path: str, mode: int = 0o755) -> None:
    # As bwrap's mkdir_with_parents and ensure_dir: parents 0755, an existing one left as is.
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        _ensure_dir(parent)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass


def _ensure_file(path: str) -> None:
    _ensure_dir(os.path.dirname(path))
    if not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))


def _newroot(path: str) -> str:
    return "newroot" + path


def _oldroot(path: str) -> str:
    return "oldroot" + path


def build_root(ops: list[tuple[object, ...]], hostname: str) -> dict[str, int]:
    """Build the box's root as bubblewrap does (same operations, same order, same flags) and
    make it this process's root. Returns the files of ro-bind-data ops, filled at the go."""
    global _proc_fd
    data_files: dict[str, int] = {}
    _proc_fd = os.open("/proc", os.O_PATH | os.O_CLOEXEC)
    _host_mounts[:] = _mount_points()
    os.umask(0)
    mount(None, "/", None, MS_SILENT | MS_SLAVE | MS_REC, None)
    # bubblewrap's two pivots: a tmpfs base holding newroot (the box) and oldroot (the host).
    mount("tmpfs", "/tmp", "tmpfs", MS_NODEV | MS_NOSUID, None)
    os.chdir("/tmp")
    os.mkdir("newroot", 0o755)
    mount("newroot", "newroot", None, MS_SILENT | MS_BIND | MS_REC, None)
    os.mkdir("oldroot", 0o755)
    zy.check(zy.libc.syscall(_SYS_PIVOT_ROOT, b"/tmp", b"oldroot"), "pivot_root")
    os.chdir("/")
    for op in ops:
        _apply(op, data_files)
    mount("oldroot", "oldroot", None, MS_SILENT | MS_REC | MS_PRIVATE, None)
    zy.check(zy.libc.umount2(b"oldroot", MNT_DETACH), "unmount old root")
    oldroot = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    os.chdir("/newroot")
    zy.check(zy.libc.syscall(_SYS_PIVOT_ROOT, b".", b"."), "pivot_root newroot")
    os.fchdir(oldroot)
    os.close(oldroot)
    zy.check(zy.libc.umount2(b".", MNT_DETACH), "unmount base")
    os.chdir("/")
    os.close(_proc_fd)
    name = hostname.encode()
    zy.check(zy.libc.sethostname(name, len(name)), "sethostname")
    return data_files


def _apply(op: tuple[object, ...], data_files: dict[str, int]) -> None:
    kind, args = str(op[0]), [str(a) for a in op[1:]]
    if kind in ("ro-bind", "bind", "dev-bind"):
        src, dest = _oldroot(args[0]), _newroot(args[1])
        if os.path.isdir(src):
            _ensure_dir(dest)
        else:
            _ensure_file(dest)
        host = os.path.realpath(args[0])
        _bind(src, dest, readonly=kind == "ro-bind", devices=kind == "dev-bind", host=host)
    elif kind == "symlink":
        os.symlink(args[0], _newroot(args[1]))
    elif kind == "dir":
        _ensure_dir(_newroot(args[0]), int(args[1], 8))
    elif kind == "tmpfs":
        dest, perms, size = _newroot(args[0]), int(args[1], 8), int(args[2])
        _ensure_dir(dest)
        mount("tmpfs", dest, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0{perms:o},size={size}")
    elif kind == "proc":
        dest = _newroot(args[0])
        _ensure_dir(dest)
        mount("proc", dest, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, None)
        for cover in _PROC_COVERS:  # as bubblewrap: the kernel's knobs, read-only
            sub = f"{dest}/{cover}"
            if os.access(sub, os.W_OK):
                _bind(sub, sub, readonly=True, devices=False)
    elif kind == "ro-bind-data":
        name, dest, perms = args[0], _newroot(args[1]), int(args[2], 8)
        tmp = f"/{name}.data"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, perms)
        os.fchmod(fd, perms)
        _ensure_file(dest)
        _bind(tmp, dest, readonly=True, devices=False)
        os.unlink(tmp)
        data_files[name] = fd  # written at the go, when the run's uid is known
    else:
        raise zy.SetupError(f"unknown box operation {kind!r}")
