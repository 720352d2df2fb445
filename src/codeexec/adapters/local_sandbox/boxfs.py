"""Host directories every box of a sandbox shares: its /etc (an allowlisted copy) and /dev."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import stat

# What runtimes read from /etc: the dynamic loader's cache and config, the alternatives
# symlinks (cc, java...), the time zone, OpenSSL's config (node reads it at start-up), and
# the JDKs' and PHP's configuration trees.
ALLOWLIST = (
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "ssl/openssl.cnf",
    "java-*",
    "php",
)
HOSTS = b"127.0.0.1 localhost sandbox\n::1 localhost sandbox\n"
PER_RUN = ("passwd", "group")
"""Empty here; each run binds its own over them (they name the run's uid)."""


def _copy(src: str, dst: str) -> None:
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISDIR(st.st_mode):
        os.mkdir(dst, 0o755)
        for entry in sorted(os.listdir(src)):
            _copy(os.path.join(src, entry), os.path.join(dst, entry))
    elif stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_IROTH:
        # Only what any local user may read: never a secret the host keeps from its users.
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chmod(dst, 0o644)


def build_etc(target: str, host_etc: str = "/etc") -> str:
    """Create `target` as the box's /etc (replacing a previous one) and return it."""
    staging = f"{target}.new"
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(staging)
    os.mkdir(staging, 0o755)
    for pattern in ALLOWLIST:
        for src in sorted(glob.glob(os.path.join(host_etc, pattern))):
            rel = os.path.relpath(src, host_etc)
            os.makedirs(os.path.join(staging, os.path.dirname(rel)), 0o755, exist_ok=True)
            _copy(src, os.path.join(staging, rel))
    with open(os.path.join(staging, "hosts"), "wb") as f:
        f.write(HOSTS)
    for name in PER_RUN:
        open(os.path.join(staging, name), "wb").close()
    _readable_by_all(staging)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(target)
    os.rename(staging, target)
    return target


def _readable_by_all(top: str) -> None:
    # The run's uid must read all of it whatever the server's umask left (and nothing here
    # is secret: every file is a copy of a world-readable one).
    for directory, _, files in os.walk(top):
        os.chmod(directory, 0o755)
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, 0o644)


# Character devices every runtime may open; no tty or pty (a run has no terminal).
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9)}
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "core": "/proc/kcore",
}


def build_dev(target: str) -> str:
    """Fill `target` (a fresh tmpfs that allows devices) as the box's /dev. Binding this one
    directory replaces the dozen mount operations of bubblewrap's own --dev."""
    for name, (major, minor) in DEVICES.items():
        path = os.path.join(target, name)
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(path, 0o666)
    for name, link in DEV_LINKS.items():
        os.symlink(link, os.path.join(target, name))
    os.mkdir(os.path.join(target, "shm"), 0o755)
    os.chmod(os.path.join(target, "shm"), 0o755)
    os.chmod(target, 0o755)
    return target
