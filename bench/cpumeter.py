"""CPU time of this process and everything it starts, read from a cgroup made around it.

RUSAGE_CHILDREN undercounts a sandbox: bubblewrap's outer process exits without reaping
the box's pid 1, and the zygote's boxes are not our children at all. A cgroup counts every
process in it, whoever reaps it. Run cgroups the sandbox makes are nested under ours, so
they count too. Without a writable cgroup, falls back to our own + reaped children's time.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time

_V1 = "/sys/fs/cgroup/cpuacct"
_V2 = "/sys/fs/cgroup"


class CpuMeter:
    """`with CpuMeter() as cpu: ...; cpu.seconds()` is the CPU used since it was entered."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.kind = "rusage"
        self._origin: str | None = None

    def __enter__(self) -> CpuMeter:
        for kind, root, stat in (("v2", _V2, "cpu.stat"), ("v1", _V1, "cpuacct.usage")):
            own = _own_cgroup(kind)
            if own is None:
                continue
            base = root + own.rstrip("/")
            path = os.path.join(base, f"codeexec-bench-{os.getpid()}")
            try:
                os.mkdir(path)
                if not os.path.exists(os.path.join(path, stat)):
                    os.rmdir(path)
                    continue
                _write(os.path.join(path, "cgroup.procs"), str(os.getpid()))
            except OSError:
                with contextlib.suppress(OSError):
                    os.rmdir(path)
                continue
            self.path, self.kind, self._origin = path, kind, base
            return self
        return self

    def seconds(self) -> float:
        if self.path is None:
            own = time.process_time()
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            return own + children.ru_utime + children.ru_stime
        if self.kind == "v1":
            with open(os.path.join(self.path, "cpuacct.usage")) as f:
                return int(f.read()) / 1e9
        with open(os.path.join(self.path, "cpu.stat")) as f:
            usage = next(line for line in f if line.startswith("usage_usec"))
        return int(usage.split()[1]) / 1e6

    def __exit__(self, *exc: object) -> None:
        if self.path is None or self._origin is None:
            return
        with contextlib.suppress(OSError):
            _write(os.path.join(self._origin, "cgroup.procs"), str(os.getpid()))
        for _ in range(100):  # processes of ours may still be leaving it
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.05)


def _own_cgroup(kind: str) -> str | None:
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if kind == "v2" and controllers == "" and os.path.exists(_V2 + "/cgroup.controllers"):
                return path
            if kind == "v1" and "cpuacct" in controllers.split(","):
                return path
    return None


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)
