"""Coordinator policy speed: a deep queue flowing through, one user and many capped users."""

from __future__ import annotations

import time
from uuid import UUID

from codeexec.domain.coordinator import Coordinator, CoordinatorConfig, UserLimits

GENEROUS = UserLimits(rate_limit=1_000_000, max_running=1_000_000, max_queued=1_000_000)


def one_user_flow(n: int = 10_000) -> float:
    """Submit n executions for one user, then schedule and release them all; seconds."""
    c = Coordinator(CoordinatorConfig(max_running=8, max_queue=2 * n, default_user_limits=GENEROUS))
    started = time.perf_counter()
    for i in range(n):
        c.submit(UUID(int=i + 1), "ann", i % 10, now=i * 0.001)
    done, now = 0, 10.0
    while done < n:
        for s in c.schedule(now):
            c.release(s.execution_id)
            done += 1
        now += 0.01
    return time.perf_counter() - started


def capped_users(n: int = 10_000, steps: int = 3_000) -> float:
    """100 users capped at one run each over a deep queue: `steps` schedule+release; seconds."""
    c = Coordinator(
        CoordinatorConfig(
            max_running=50,
            max_queue=n,
            default_user_limits=UserLimits(rate_limit=n, max_running=1, max_queued=n),
        )
    )
    for i in range(n):
        c.submit(UUID(int=i + 1), f"user{i % 100}", i % 10, now=0)
    started = time.perf_counter()
    running: list[UUID] = []
    for step in range(steps):
        running.extend(s.execution_id for s in c.schedule(now=step * 0.1))
        c.release(running.pop(0))
    return time.perf_counter() - started


def main() -> None:
    flow = min(one_user_flow() for _ in range(3))
    capped = min(capped_users() for _ in range(3))
    print(f"bench: coordinator_one_user_flow_10k {10_000 / flow:.0f} exec/s")
    print(f"bench: coordinator_capped_users_schedule {3_000 / capped:.0f} steps/s")


if __name__ == "__main__":
    main()
