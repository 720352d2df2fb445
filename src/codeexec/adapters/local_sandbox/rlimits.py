"""Per-process resource limits, set from outside on the box's init before the code starts."""

from __future__ import annotations

import math
import resource
from collections.abc import Sequence

from codeexec.domain.model import Limits

RLimit = tuple[int, int, int]
"""(resource, soft, hard)."""


def rlimits_for(
    limits: Limits, *, memory_in_cgroup: bool, cpu_in_cgroup: bool = False, own_uid: bool = True
) -> list[RLimit]:
    """The rlimits for one stage. Every process of the box inherits them from its init.

    RLIMIT_CPU is per process: the soft limit sends SIGXCPU, the hard one a second later
    SIGKILL. The kernel checks it against a count sampled at its ticks, which under load reads
    well above the CPU actually used (runs stopped at a 1 s limit had used 0.82-0.87 s by
    their cgroup's exact count). So where the cgroup counts the tree's CPU (`cpu_in_cgroup`),
    that count, polled by the supervisor, is the limit, and RLIMIT_CPU is a backstop a second
    later, for a supervisor that could not poll in time. Address-space limits break runtimes
    that reserve large virtual ranges (the JVM, Go, V8), so RLIMIT_AS is only the fallback
    when no memory cgroup is available. RLIMIT_NPROC counts every process of a user id, so
    it is set only when the run has a uid of its own."""
    cpu = max(1, math.ceil(limits.cpu_time_s)) + (1 if cpu_in_cgroup else 0)
    chosen = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_MEMLOCK, 0, 0),
    ]
    if own_uid:  # counted per user id: only meaningful when the run has a uid of its own
        chosen.append((resource.RLIMIT_NPROC, limits.processes, limits.processes))
    if not memory_in_cgroup:
        chosen.append((resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes))
    return chosen


def apply(pid: int, rlimits: Sequence[RLimit]) -> None:
    """Set `rlimits` on another process (needs CAP_SYS_RESOURCE or the same uid)."""
    for which, soft, hard in rlimits:
        resource.prlimit(pid, which, (soft, hard))
