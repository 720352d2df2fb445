"""The box's /etc: an allowlisted, world-readable-only copy of the host's, made once per process."""

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


def build(target: str, host_etc: str = "/etc") -> str:
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
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(target)
    os.rename(staging, target)
    return target
