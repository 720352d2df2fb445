"""A program for the box that prints, as JSON, everything about its start a program can see.

Run in a box forked from the zygote and in a cold bubblewrap box, its output must be equal
(once the run's uid, which differs per run, is replaced)."""

import sys

_START_MODULES = sorted(sys.modules)
_START_MAIN = {name: repr(value) for name, value in vars(sys.modules["__main__"]).items()}

import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import stat  # noqa: E402


def read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode()


def status(*keys: str) -> dict[str, str]:
    with open("/proc/self/status") as f:
        fields = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    return {k: fields[k].strip() for k in keys}


def fds() -> dict[str, str]:
    found = {}
    for fd in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            mode = os.fstat(int(fd)).st_mode
        except OSError:
            continue  # the listing's own fd
        kind = "fifo" if stat.S_ISFIFO(mode) else "chr" if stat.S_ISCHR(mode) else "reg"
        found[fd] = kind
    return found


def mounts() -> list[str]:
    # Mount point, file system type and options: ids and sources differ between boxes.
    with open("/proc/self/mountinfo") as f:
        lines = [line.split(" - ") for line in f.read().splitlines()]
    return [
        " ".join([left.split()[4], left.split()[5], right.split()[0], right.split()[2]])
        for left, right in lines
    ]


def path_stat(path: str) -> list[int]:
    st = os.lstat(path)
    return [st.st_mode, st.st_uid, st.st_gid]


umask = os.umask(0)
os.umask(umask)
stdin = sys.stdin
observed = {
    "argv": sys.argv,
    "orig_argv": sys.orig_argv,
    "path": sys.path,
    "flags": list(sys.flags),
    "executable": sys.executable,
    "modules": _START_MODULES,
    "environ": dict(os.environ),
    "cmdline": read("/proc/self/cmdline"),
    "environ_file": read("/proc/self/environ"),
    "rlimits": {
        name: resource.getrlimit(getattr(resource, name))
        for name in dir(resource)
        if name.startswith("RLIMIT_")
    },
    "main": _START_MAIN,
    "fds": fds(),
    "umask": umask,
    "cwd": os.getcwd(),
    "ids": [os.getresuid(), os.getresgid(), os.getgroups()],
    "status": status(
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
        "SigBlk",
        "SigIgn",
        "SigCgt",
        "Umask",
    ),
    "tree": [os.getpid(), os.getppid(), os.getsid(0), os.getpgrp()],
    "hostname": socket.gethostname(),
    "signals": {
        s.name: repr(signal.getsignal(s))
        for s in signal.Signals
        if s not in (signal.SIGKILL, signal.SIGSTOP)
    },
    "mask": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
    "mounts": mounts(),
    "stats": {
        p: path_stat(p)
        for p in (
            "/",
            "/box",
            "/tmp",
            "/etc/passwd",
            "/etc/group",
            "/proc/self/environ",
            "/dev/null",
            "/dev/shm",
        )
    },
    "passwd": read("/etc/passwd"),
    "stdin": [
        stdin.encoding,
        stdin.errors,
        stdin.line_buffering,
        stdin.isatty(),
        stdin.seekable(),
        stdin.read(),
    ],
    "stdout": [
        sys.stdout.encoding,
        sys.stdout.errors,
        sys.stdout.line_buffering,
        sys.stdout.write_through,
        sys.stdout.isatty(),
    ],
    "recursion": sys.getrecursionlimit(),
    "gc": [gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()],
    "nice": os.nice(0),
    "oom": read("/proc/self/oom_score_adj"),
    "affinity": sorted(os.sched_getaffinity(0)),
    "loadavg_readable": os.access("/proc/loadavg", os.R_OK),
    "files": sorted(os.listdir("/box")),
    "cgroup": [line.split(":")[1] for line in read("/proc/self/cgroup").splitlines()],
}
print(json.dumps(observed, sort_keys=True))
