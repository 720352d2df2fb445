"""The cgroup of one stage: limits (set again before a prepared box starts), accounting, kill."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
from abc import ABC, abstractmethod
from collections.abc import Mapping

from codeexec.domain.model import Limits

# Plain system calls: open() adds a terminal check, seeks and a stat to every one of the
# score of small cgroup files a run reads and writes.


def read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode("ascii")
    finally:
        os.close(fd)


def write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode("ascii"))
    finally:
        os.close(fd)


class BelowUsage(OSError):
    """The memory limit asked for is below what the box already holds before its go (the
    runtime's own pages): the run is over its limit before it starts."""

    def __init__(self, cgroup: RunCgroup) -> None:
        super().__init__(errno.EBUSY, "memory limit below the box's usage before its start")
        self.cgroup = cgroup


class RunCgroup(ABC):
    """The cgroup of one stage of one run. Every process of the stage is in it."""

    def __init__(self, dirs: Mapping[str, str]) -> None:
        self.dirs = dict(dirs)
        """controller -> directory ("unified" for v2)."""
        self._cpu_base = 0.0
        self._limits: Limits | None = None

    def limit(self, limits: Limits) -> None:
        """Set the memory and process limits (again, for a box prepared ahead)."""
        if limits.memory_bytes == getattr(self._limits, "memory_bytes", None) and (
            limits.processes == getattr(self._limits, "processes", None)
        ):
            return  # as prepared: the common case, nothing to write
        self._limit(limits)
        self._limits = limits

    def join(self, pid: int) -> None:
        for d in self.dirs.values():
            write(os.path.join(d, "cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        d = next(iter(self.dirs.values()))
        try:
            return [int(p) for p in read(os.path.join(d, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def kill_all(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        for d in self.dirs.values():
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(d)

    def start_accounting(self) -> None:
        """Count from now: a prepared box's own set-up is not the code's CPU or memory."""
        self._cpu_base = self._cpu_total() or 0.0
        self._reset_peak()

    def cpu_time_s(self) -> float | None:
        total = self._cpu_total()
        return None if total is None else max(0.0, total - self._cpu_base)

    @abstractmethod
    def _limit(self, limits: Limits) -> None: ...

    @abstractmethod
    def _cpu_total(self) -> float | None: ...

    def _reset_peak(self) -> None:
        return None

    @abstractmethod
    def peak_memory_bytes(self) -> int | None: ...

    @abstractmethod
    def oom_kills(self) -> int: ...


class V1Run(RunCgroup):
    def _limit(self, limits: Limits) -> None:
        # One more process than asked for: the box's init (its pid 1) is in the group.
        write(os.path.join(self.dirs["pids"], "pids.max"), str(limits.processes + 1))
        memory = self.dirs["memory"]
        value = str(limits.memory_bytes)
        mem = os.path.join(memory, "memory.limit_in_bytes")
        # With swap accounting, memory+swap gets the same cap so nothing spills into swap;
        # it may never be below the memory limit, so which goes first depends on the way.
        swap = os.path.join(memory, "memory.memsw.limit_in_bytes")
        try:
            write(mem, value)
        except OSError as exc:
            if exc.errno == errno.EBUSY:  # the kernel could not reclaim down to it
                raise BelowUsage(self) from exc
            if exc.errno != errno.EINVAL or not os.path.exists(swap):
                raise
            write(swap, value)
            write(mem, value)
            return
        with contextlib.suppress(OSError):
            write(swap, value)

    def _cpu_total(self) -> float | None:
        if "cpuacct" not in self.dirs:
            return None
        return int(read(os.path.join(self.dirs["cpuacct"], "cpuacct.usage"))) / 1e9

    def _reset_peak(self) -> None:
        with contextlib.suppress(OSError):
            write(os.path.join(self.dirs["memory"], "memory.max_usage_in_bytes"), "0")

    def peak_memory_bytes(self) -> int | None:
        return int(read(os.path.join(self.dirs["memory"], "memory.max_usage_in_bytes")))

    def oom_kills(self) -> int:
        text = read(os.path.join(self.dirs["memory"], "memory.oom_control"))
        match = re.search(r"^oom_kill (\d+)", text, re.MULTILINE)
        return int(match.group(1)) if match else 0


class V2Run(RunCgroup):
    def _limit(self, limits: Limits) -> None:
        d = self.dirs["unified"]
        write(os.path.join(d, "pids.max"), str(limits.processes + 1))
        write(os.path.join(d, "memory.max"), str(limits.memory_bytes))
        with contextlib.suppress(OSError):
            write(os.path.join(d, "memory.swap.max"), "0")

    def kill_all(self) -> None:
        try:
            write(os.path.join(self.dirs["unified"], "cgroup.kill"), "1")
        except OSError:  # before Linux 5.14
            super().kill_all()

    def _keyed(self, name: str, key: str) -> int | None:
        try:
            text = read(os.path.join(self.dirs["unified"], name))
        except OSError:
            return None
        match = re.search(rf"^{key} (\d+)", text, re.MULTILINE)
        return int(match.group(1)) if match else None

    def _cpu_total(self) -> float | None:
        usec = self._keyed("cpu.stat", "usage_usec")
        return None if usec is None else usec / 1e6

    def peak_memory_bytes(self) -> int | None:
        try:
            return int(read(os.path.join(self.dirs["unified"], "memory.peak")))
        except OSError:  # before Linux 5.19
            return None

    def oom_kills(self) -> int:
        return self._keyed("memory.events", "oom_kill") or 0
