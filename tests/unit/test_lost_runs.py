"""Runs lost with their server keep the output they recorded; a stop lets runs finish first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.domain.model import Limits, RunSpec, SourceFile
from codeexec.ports.clock import ManualClock
from codeexec.runtime import ALL_ROLES, Codeexec
from tests.unit.factories import runtime, script


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def outputs_recorded(cx: Codeexec, execution_id: object, count: int) -> None:
    async def seen() -> int:
        events = [e async for e in cx.events(execution_id, follow=False)]  # type: ignore[arg-type]
        return sum(e.type_name == "ExecutionOutput" for e in events)

    deadline = asyncio.get_running_loop().time() + 5
    while await seen() < count:
        assert asyncio.get_running_loop().time() < deadline, "output not recorded in time"
        await asyncio.sleep(0.01)


async def test_a_run_lost_with_its_server_keeps_its_partial_output_bytes_exact(
    tmp_path: Path,
) -> None:
    sandbox = FakeSandbox()
    # No grace: stopping abandons the run, as a killed server would.
    async with runtime(sandbox, data_dir=tmp_path, shutdown_grace_s=0) as cx:
        view = await cx.submit("alice", script("out first héllo\nerr oops\nhang"))
        await outputs_recorded(cx, view.id, 2)
    async with runtime(FakeSandbox(), data_dir=tmp_path) as cx:
        lost = await cx.wait(view.id, timeout=5)
    assert (lost.state, lost.status) == ("failed", "internal_error")
    assert "lost" in lost.message
    assert lost.stdout == "first héllo\n".encode()
    assert lost.stderr == b"oops\n"
    assert not lost.stdout_truncated and not lost.stderr_truncated


async def test_a_lost_runs_output_is_cut_at_the_output_limit_and_flagged(tmp_path: Path) -> None:
    spec = RunSpec(
        language="fake",
        files=(SourceFile(name="main", content=b"out 0123456789\nerr ab\nhang"),),
        limits=Limits(output_bytes=4),
    )
    async with runtime(data_dir=tmp_path, shutdown_grace_s=0) as cx:
        view = await cx.submit("alice", spec)
        await outputs_recorded(cx, view.id, 2)
    async with runtime(data_dir=tmp_path) as cx:
        lost = await cx.wait(view.id, timeout=5)
    assert (lost.stdout, lost.stdout_truncated) == (b"0123", True)
    assert (lost.stderr, lost.stderr_truncated) == (b"ab\n", False)


async def test_a_run_timed_out_by_the_saga_keeps_the_output_it_recorded() -> None:
    clock = ManualClock()
    sandbox = FakeSandbox()
    async with runtime(sandbox, clock=clock) as cx:
        view = await cx.submit("alice", script("out started\nhang"))
        await outputs_recorded(cx, view.id, 1)
        clock.advance(3600)
        done = await cx.wait(view.id, timeout=5)
    assert done.status == "time_limit_exceeded"
    assert done.stdout == b"started\n"


async def test_a_stop_lets_running_runs_finish_within_the_grace(tmp_path: Path) -> None:
    sandbox = FakeSandbox()
    async with runtime(sandbox, data_dir=tmp_path, shutdown_grace_s=30) as cx:
        view = await cx.submit("alice", script("out a\nsleep 0.2\nout b"))
        await eventually(lambda: cx.get(view.id).state == "running")
    async with runtime(FakeSandbox(), data_dir=tmp_path) as cx:
        done = await cx.wait(view.id, timeout=5)
    assert (done.status, done.stdout) == ("succeeded", b"a\nb\n")


async def test_a_run_that_started_before_its_saga_began_is_still_reported_lost(
    tmp_path: Path,
) -> None:
    # The worker recorded the start, but the server died before the saga took its turn.
    no_saga = ALL_ROLES - {"saga", "saga-timer"}
    async with runtime(data_dir=tmp_path, roles=no_saga, shutdown_grace_s=0) as cx:
        view = await cx.submit("alice", script("out begun\nhang"))
        await outputs_recorded(cx, view.id, 1)
    async with runtime(data_dir=tmp_path) as cx:
        lost = await cx.wait(view.id, timeout=5)
    assert (lost.status, lost.stdout) == ("internal_error", b"begun\n")
