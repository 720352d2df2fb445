"""Builders shared by the unit tests: specs, fast coordinator configs, runtimes on fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from codeexec import CoordinatorConfig, RunSpec, Settings, SourceFile, UserLimits
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.ports.clock import Clock
from codeexec.runtime import ALL_ROLES, Codeexec


def script(text: str, language: str = "fake") -> RunSpec:
    return RunSpec(language=language, files=(SourceFile(name="main", content=text.encode()),))


def roomy(max_running: int = 64, per_user: int = 64, **user: int | float) -> CoordinatorConfig:
    limits = UserLimits(
        rate_limit=int(user.get("rate_limit", 10**9)),
        rate_window_s=float(user.get("rate_window_s", 60.0)),
        max_running=per_user,
        max_queued=int(user.get("max_queued", 100_000)),
    )
    return CoordinatorConfig(
        max_running=max_running,
        max_queue=int(user.get("max_queue", 100_000)),
        default_user_limits=limits,
    )


def runtime(
    sandbox: FakeSandbox | None = None,
    config: CoordinatorConfig | None = None,
    data_dir: Path | None = None,
    clock: Clock | None = None,
    roles: frozenset[str] = ALL_ROLES,
    timer_interval_s: float = 0.02,
    shutdown_grace_s: float = 10.0,
) -> Codeexec:
    settings = Settings(
        data_dir=data_dir,
        coordinator=config or roomy(),
        roles=roles,
        timer_interval_s=timer_interval_s,
        shutdown_grace_s=shutdown_grace_s,
    )
    return Codeexec(settings, sandbox=sandbox or FakeSandbox(), clock=clock)


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Listings come from the read model, which the projections role keeps a moment behind
    the store: wait for what a check expects to show."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)
