"""The bubblewrap command line for one stage: namespaces, read-only runtime, private dirs, uid."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from codeexec.adapters.local_sandbox.recipes import BOX, Toolchain

_ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
BOX_USER = "sandbox"


@dataclass(frozen=True)
class BoxFiles:
    """File descriptors bubblewrap reads at start-up (inherited by the bwrap process)."""

    info: int
    block: int
    hold: int
    """A write end of the block pipe, kept by the box's pid 1 (never by the code)."""
    passwd: int
    group: int
    seccomp: int | None = None

    def all(self) -> tuple[int, ...]:
        fds = (self.info, self.block, self.hold, self.passwd, self.group, self.seccomp)
        return tuple(fd for fd in fds if fd is not None)


def identity_files(uid: int) -> Mapping[str, bytes]:
    """/etc/passwd and /etc/group for the box: only root, nobody and the run's user."""
    return {
        "passwd": (
            f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"{BOX_USER}:x:{uid}:{uid}:{BOX_USER}:{BOX}:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ).encode(),
        "group": f"root:x:0:\n{BOX_USER}:x:{uid}:\nnogroup:x:65534:\n".encode(),
    }


Op = tuple[str, ...]
"""One step of building a box's root, as bubblewrap's option of the same name: ("ro-bind",
src, dest), ("bind", src, dest), ("dev-bind", src, dest), ("symlink", target, dest),
("dir", dest, perms), ("tmpfs", dest, perms, size), ("proc", dest), ("dev", dest),
("ro-bind-data", name, dest, perms); perms in octal digits. bubblewrap and the zygote both
build boxes from this one list."""

DATA_PERMS = 0o644
"""/etc/passwd and /etc/group: world-readable, as on any host (bubblewrap's default is 0600)."""


@functools.lru_cache(maxsize=1)
def _host_root() -> tuple[Op, ...]:
    """Bind /usr; mirror the host's /bin, /lib... (symlinks into /usr on merged-usr hosts)."""
    ops: list[Op] = [("ro-bind", "/usr", "/usr")]
    for name in _ROOT_LINKS:
        path = "/" + name
        if os.path.islink(path):
            ops.append(("symlink", os.readlink(path), path))
        elif os.path.isdir(path):
            ops.append(("ro-bind", path, path))
    return tuple(ops)


def _runtime_binds(binds: Sequence[str]) -> list[Op]:
    # A runtime outside /usr (pyenv, rustup) is bound at its own path so its compiled-in
    # prefix still works; the directories above it are made traversable (the host's /root
    # is mode 0700) without exposing anything else that lives there.
    ops: list[Op] = []
    made: set[str] = set()
    for bind in binds:
        parts = bind.strip("/").split("/")
        for i in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:i])
            if ancestor not in made and ancestor not in ("/usr", "/etc", "/tmp"):
                made.add(ancestor)
                ops.append(("dir", ancestor, "0755"))
        ops.append(("ro-bind", bind, bind))
    return ops


def box_ops(
    *,
    etc: str,
    dev: str | None,
    scratch_bytes: int,
    binds: Sequence[str],
    workspace: str,
) -> list[Op]:
    """The root of a box: the runtime read-only, the boxes' /etc with this run's identity,
    a private /proc, /dev, size-limited /tmp and /dev/shm, and the run's work dir at /box."""
    scratch = str(scratch_bytes)
    return [
        *_host_root(),
        ("ro-bind", etc, "/etc"),
        ("ro-bind-data", "passwd", "/etc/passwd", f"{DATA_PERMS:04o}"),
        ("ro-bind-data", "group", "/etc/group", f"{DATA_PERMS:04o}"),
        ("proc", "/proc"),
        ("dev-bind", dev, "/dev") if dev else ("dev", "/dev"),
        ("tmpfs", "/tmp", "1777", scratch),
        ("tmpfs", "/dev/shm", "1777", scratch),
        *_runtime_binds(binds),
        ("bind", workspace, BOX),
    ]


def _bwrap_options(ops: Sequence[Op], data_fds: Mapping[str, int]) -> list[str]:
    args: list[str] = []
    for kind, *rest in ops:
        if kind == "dir":
            args += ["--perms", rest[1], "--dir", rest[0]]
        elif kind == "tmpfs":
            args += ["--perms", rest[1], "--size", rest[2], "--tmpfs", rest[0]]
        elif kind == "ro-bind-data":
            args += ["--perms", rest[2], "--ro-bind-data", str(data_fds[rest[0]]), rest[1]]
        else:
            args += [f"--{kind}", *rest]
    return args


def environment(toolchain: Toolchain) -> dict[str, str]:
    """The whole environment of the code: an allowlist, nothing inherited from the host."""
    path = [*toolchain.path, "/usr/local/bin", "/usr/bin", "/bin"]
    env = {
        "PATH": ":".join(dict.fromkeys(path)),
        "HOME": BOX,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "USER": BOX_USER,
        "LOGNAME": BOX_USER,
    }
    env.update(toolchain.recipe.env)
    return env


def bwrap_argv(
    *,
    bwrap: str,
    setpriv: str | None,
    uid: int,
    ops: Sequence[Op],
    fds: BoxFiles,
    command: Sequence[str],
) -> list[str]:
    """The full argv: bubblewrap, then (as root) setpriv dropping to `uid`, then `command`."""
    argv = [
        bwrap,
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        *_bwrap_options(ops, {"passwd": fds.passwd, "group": fds.group}),
        "--chdir",
        BOX,
        "--info-fd",
        str(fds.info),
        "--block-fd",
        str(fds.block),
        "--sync-fd",
        str(fds.hold),
    ]
    if fds.seccomp is not None:
        argv += ["--seccomp", str(fds.seccomp)]
    if setpriv is None:
        # Not root: bubblewrap maps our own unprivileged uid through a user namespace.
        return [*argv, "--unshare-user", "--disable-userns", "--cap-drop", "ALL", "--", *command]
    # As root, bubblewrap keeps just enough to enter /box (mode 0700, the run's uid's) and
    # let setpriv switch to the run's uid, which then drops every capability (bounding set
    # included) and forbids regaining any.
    argv += [
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CAP_DAC_READ_SEARCH",
        "--cap-add",
        "CAP_SETUID",
        "--cap-add",
        "CAP_SETGID",
        "--cap-add",
        "CAP_SETPCAP",
    ]
    return [
        *argv,
        "--",
        setpriv,
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
        *command,
    ]


def split_options(argv: Sequence[str]) -> tuple[str, bytes, list[str]]:
    """bubblewrap, its options as the NUL-separated text its `--args FD` reads, and the
    command after them. The options name host paths (the work dir, the boxes' /etc); given
    through a file they never show in /proc/1/cmdline, which the code can read."""
    end = list(argv).index("--")
    options = b"".join(os.fsencode(a) + b"\0" for a in argv[1:end])
    return argv[0], options, list(argv[end + 1 :])
