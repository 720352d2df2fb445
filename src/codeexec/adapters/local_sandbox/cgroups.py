"""Control groups for sandbox runs: v2 where writable, else v1; limits, accounting, kill-all."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping

from codeexec.adapters.local_sandbox import ownership
from codeexec.adapters.local_sandbox.cgroup_run import RunCgroup, V1Run, V2Run, read, write
from codeexec.domain.model import Limits

__all__ = ["CgroupTree", "CgroupV1Tree", "CgroupV2Tree", "RunCgroup", "read", "write"]

_OWNER = re.compile(r"^codeexec\.(?:(\d{1,7})|[0-9a-f]{16})$")
"""`codeexec.<id>`, flock'd by its live owner; `codeexec.<pid>` from versions before that."""
_WARM_FOR_S = 2.0
_WARM_EVERY_S = 0.01


def process_alive(pid: int) -> bool:
    """Whether a process exists (owned by anyone); used to sweep what dead owners of earlier
    versions left (they were named by pid, not locked)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CgroupTree(ABC):
    """A directory per controller, owned by this process, under which run cgroups are made."""

    version: str

    def __init__(self, parents: Mapping[str, str], own: str | None = None) -> None:
        self.parents = dict(parents)
        self.own = own
        """cgroup.procs of the cgroup this process is in (in one hierarchy), if known."""
        self._made = False
        self._held: list[int] = []
        self._warm_lock = threading.Lock()
        self._warm_until = 0.0
        self._warmer: threading.Thread | None = None

    @property
    def counts_cpu(self) -> bool:
        """Whether a run's cgroup counts its whole tree's CPU time (v2's cpu.stat always
        does; v1 needs the cpuacct controller)."""
        return True

    def keep_warm(self, for_s: float = _WARM_FOR_S) -> None:
        """Keep moves into cgroups cheap for the next `for_s` seconds.

        Every move takes a kernel lock whose first writer after a quiet spell waits for an
        RCU grace period (5-15 ms here), on the path of every run's start. Writing our own
        pid where it already is takes that lock and changes nothing; doing it more often
        than a grace period (each write costs ~0.2 ms) keeps the next real move at ~0.1 ms.
        Called on every start, so a busy sandbox stays warm and an idle one costs nothing."""
        if self.own is None:
            return
        with self._warm_lock:
            self._warm_until = time.monotonic() + for_s
            if self._warmer is None:
                self._warmer = threading.Thread(
                    target=self._warm_loop, name="codeexec-cgroup-warmer", daemon=True
                )
                self._warmer.start()

    def _warm_loop(self) -> None:
        assert self.own is not None
        while True:
            with self._warm_lock:
                if time.monotonic() >= self._warm_until:
                    self._warmer = None
                    return
            with contextlib.suppress(OSError):
                write(self.own, str(os.getpid()))
            time.sleep(_WARM_EVERY_S)

    @property
    def controllers(self) -> frozenset[str]:
        return frozenset(self.parents)

    def _prepare(self) -> None:
        if self._made:
            return
        for d in self.parents.values():
            _sweep_stale(os.path.dirname(d))
            for _ in range(100):  # another instance's sweep may take it the instant it is new
                held = ownership.hold(d, directory=True)
                if held is not None:
                    self._held.append(held)
                    break
                time.sleep(0.001)
            else:
                raise OSError(errno.EBUSY, "could not claim our cgroup", d)
        self._made = True

    def create(self, name: str, limits: Limits) -> RunCgroup:
        """Make the cgroup for one stage with its memory and process limits set."""
        self._prepare()
        dirs = {c: os.path.join(p, name) for c, p in self.parents.items()}
        for d in dirs.values():
            os.mkdir(d, 0o755)
        run = self._run(dirs)
        try:
            run.limit(limits)
        except OSError:
            run.remove()
            raise
        return run

    @abstractmethod
    def _run(self, dirs: Mapping[str, str]) -> RunCgroup: ...

    def close(self) -> None:
        self._made = False
        with self._warm_lock:
            self._warm_until = 0.0
        for d in self.parents.values():
            with contextlib.suppress(OSError):
                os.rmdir(d)
        for held in self._held:
            os.close(held)
        self._held.clear()


class CgroupV1Tree(CgroupTree):
    version = "v1"

    @property
    def counts_cpu(self) -> bool:
        return "cpuacct" in self.parents

    def _run(self, dirs: Mapping[str, str]) -> RunCgroup:
        return V1Run(dirs)


class CgroupV2Tree(CgroupTree):
    version = "v2"

    def _run(self, dirs: Mapping[str, str]) -> RunCgroup:
        return V2Run(dirs)

    def _prepare(self) -> None:
        fresh = not self._made
        super()._prepare()
        if fresh:
            write(os.path.join(self.parents["unified"], "cgroup.subtree_control"), "+memory +pids")


def _sweep_stale(base: str) -> None:
    """Remove run cgroups left by a sandbox instance that died, killing what is still in
    them (a box whose supervisor died before its go). Live owners hold their lock."""
    try:
        entries = os.listdir(base)
    except OSError:
        return
    for entry in entries:
        match = _OWNER.match(entry)
        if not match:
            continue
        owner = os.path.join(base, entry)
        taken = None
        if match.group(1) is not None:
            if process_alive(int(match.group(1))):
                continue
        elif (taken := ownership.take_if_dead(owner)) is None:
            continue
        try:
            with contextlib.suppress(OSError):  # gone meanwhile: another instance swept it
                for child in os.listdir(owner):
                    path = os.path.join(owner, child)
                    if os.path.isdir(path):
                        _remove_killing(path)
                os.rmdir(owner)
        finally:
            if taken is not None:
                os.close(taken)


def _remove_killing(path: str) -> None:
    stale = V1Run({"any": path})
    for _ in range(50):
        stale.kill_all()
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)
