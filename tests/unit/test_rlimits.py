"""The per-process limits a stage's box gets (rlimits.py)."""

from __future__ import annotations

import resource

from codeexec.adapters.local_sandbox.rlimits import rlimits_for
from codeexec.domain.model import Limits


def cpu_rlimit(
    *, memory_in_cgroup: bool, cpu_in_cgroup: bool = False, cpu_time_s: float = 2
) -> tuple[int, int]:
    chosen = rlimits_for(
        Limits(cpu_time_s=cpu_time_s),
        memory_in_cgroup=memory_in_cgroup,
        cpu_in_cgroup=cpu_in_cgroup,
    )
    return next((soft, hard) for which, soft, hard in chosen if which == resource.RLIMIT_CPU)


def test_without_a_cpu_counting_cgroup_rlimit_cpu_is_the_limit() -> None:
    assert cpu_rlimit(memory_in_cgroup=True) == (2, 3)
    assert cpu_rlimit(memory_in_cgroup=False) == (2, 3)


def test_with_a_cpu_counting_cgroup_rlimit_cpu_is_a_backstop_a_second_later() -> None:
    # The cgroup's exact count decides; the kernel's tick-sampled count must not stop a run
    # that has not used its limit.
    assert cpu_rlimit(memory_in_cgroup=True, cpu_in_cgroup=True) == (3, 4)


def test_a_fraction_of_a_second_rounds_up() -> None:
    assert cpu_rlimit(memory_in_cgroup=True, cpu_time_s=0.3) == (1, 2)
