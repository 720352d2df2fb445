"""The embedded runtime end to end on in-memory adapters and SQLite, with the fake sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import pytest

from codeexec import AdmissionRefused, ExecutionQuery, NotFound
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.domain.aggregate import Cause
from codeexec.domain.events import EVENT_TYPES
from codeexec.domain.execution import Execution
from codeexec.ports.clock import ManualClock
from codeexec.ports.sandbox import UnknownLanguage
from codeexec.runtime import ALL_ROLES, Codeexec
from tests.unit.factories import roomy, runtime, script

OPERATIONS_EVENT_TYPES = {
    name for name, cls in EVENT_TYPES.items() if cls.__module__.endswith("operations_events")
}
EXECUTION_EVENT_TYPES = set(EVENT_TYPES) - OPERATIONS_EVENT_TYPES


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def state(cx: Codeexec, execution_id: object) -> str:
    return cx.get(execution_id).state  # type: ignore[arg-type]


async def test_a_submission_runs_and_reports_a_truthful_status() -> None:
    async with runtime() as cx:
        view = await cx.submit("alice", script("out héllo\nerr oops\nexit 3"))
        assert view.state == "requested"
        done = await cx.wait(view.id, timeout=5)
        assert (done.status, done.exit_code) == ("runtime_error", 3)
        assert done.stdout == "héllo\n".encode() and done.stderr == b"oops\n"
        types = [e.type_name async for e in cx.events(view.id)]
        assert types == [
            "ExecutionRequested",
            "ExecutionQueued",
            "ExecutionScheduled",
            "ExecutionStarted",
            "ExecutionOutput",
            "ExecutionOutput",
            "ExecutionCompleted",
        ]


async def test_users_see_only_their_own_executions() -> None:
    async with runtime() as cx:
        mine = await cx.submit("alice", script("out a"))
        await cx.submit("bob", script("out b"))
        with pytest.raises(NotFound):
            cx.get(mine.id, "bob")
        await eventually(lambda: len(cx.list_all()) == 2)  # listings follow the projection
        page = cx.list(ExecutionQuery(user_id="alice"))
        assert [v.id for v in page.items] == [mine.id]


async def test_paging_walks_every_execution_newest_first() -> None:
    async with runtime() as cx:
        ids = [(await cx.submit("alice", script("out x"))).id for _ in range(7)]
        await eventually(lambda: len(cx.list_all()) == 7)
        seen, cursor = [], None
        while True:
            page = cx.list(ExecutionQuery(user_id="alice", limit=3, cursor=cursor))
            seen += [v.id for v in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == ids[::-1]


async def test_idempotency_key_returns_the_original_execution() -> None:
    async with runtime() as cx:
        first = await cx.submit("alice", script("out 1"), idempotency_key="k1")
        again = await cx.submit("alice", script("out 1"), idempotency_key="k1")
        other = await cx.submit("bob", script("out 1"), idempotency_key="k1")
        assert first.id == again.id != other.id


async def test_unknown_language_is_refused_before_anything_is_recorded() -> None:
    async with runtime() as cx:
        with pytest.raises(UnknownLanguage):
            await cx.submit("alice", script("x", language="cobol"))
        assert cx.store is not None and cx.store.max_position() == 0


async def test_the_coordinator_rejects_over_the_rate_limit_what_admission_let_through() -> None:
    # Two API processes admitted at once what together exceeds the limit: the coordinator,
    # the authority on what runs, rejects one with a reason.
    async with runtime(config=roomy(rate_limit=2)) as cx:
        assert cx.store is not None
        views = [await cx.submit("alice", script("out x")) for _ in range(2)]
        late = Execution.request(
            uuid4(), "alice", script("out x"), Cause(cx.clock.now(), uuid4(), None)
        )
        cx.store.record(late.collect_events(), [late])
        done = [await cx.wait(i, timeout=5) for i in (*(v.id for v in views), late.id)]
        # Requests are keyed by execution, so which one loses depends on partition order.
        assert sorted(d.status for d in done) == ["rejected", "succeeded", "succeeded"]
        assert any("rate limit of 2 per 60s" in d.message for d in done)


async def test_cancel_of_a_queued_execution_drops_it_without_running() -> None:
    sandbox = FakeSandbox()
    async with runtime(sandbox, config=roomy(max_running=1)) as cx:
        blocker = await cx.submit("alice", script("hang"))
        await eventually(lambda: state(cx, blocker.id) == "running")
        queued = await cx.submit("alice", script("out never"))
        await eventually(lambda: state(cx, queued.id) == "queued")
        await cx.cancel(queued.id, "alice")
        assert (await cx.wait(queued.id, timeout=5)).status == "cancelled"
        await cx.cancel(blocker.id, "alice")
        assert (await cx.wait(blocker.id, timeout=5)).status == "cancelled"
        assert sandbox.starts[f"cx-{queued.id.hex}"] == 0


async def test_cancel_really_stops_a_running_program_and_frees_its_slot() -> None:
    sandbox = FakeSandbox()
    async with runtime(sandbox, config=roomy(max_running=1)) as cx:
        running = await cx.submit("alice", script("out started\nhang"))
        await eventually(lambda: state(cx, running.id) == "running")
        await eventually(lambda: bool(sandbox.active))
        await cx.cancel(running.id, "alice")
        done = await cx.wait(running.id, timeout=5)
        assert done.status == "cancelled" and done.stdout == b"started\n"
        assert not sandbox.active
        follower = await cx.submit("alice", script("out next"))
        assert (await cx.wait(follower.id, timeout=5)).status == "succeeded"


async def test_the_saga_times_out_a_stuck_execution_and_kills_its_sandbox() -> None:
    clock = ManualClock()
    sandbox = FakeSandbox()
    async with runtime(sandbox, clock=clock) as cx:
        stuck = await cx.submit("alice", script("hang"))
        await eventually(lambda: bool(sandbox.active))
        clock.advance(3600)
        done = await cx.wait(stuck.id, timeout=5)
        assert done.state == "timed_out" and done.status == "time_limit_exceeded"
        await eventually(lambda: not sandbox.active)
        saga_events = {e.type_name for _, e in cx.store.read_all()}  # type: ignore[union-attr]
        assert {"SandboxStopRequested", "SlotReleased", "SagaCompleted"} <= saga_events


async def test_a_coordinator_rejects_a_language_its_workers_cannot_run() -> None:
    # An API process with a stale language list recorded the request directly.
    async with runtime() as cx:
        assert cx.store is not None
        execution = Execution.request(
            uuid4(), "alice", script("x", language="cobol"), Cause(cx.clock.now(), uuid4(), None)
        )
        cx.store.record(execution.collect_events(), [execution])
        await eventually(lambda: cx.read_model.get(execution.id) is not None)
        done = await cx.wait(execution.id, timeout=5)
        assert done.status == "rejected" and "cobol" in done.message


async def test_every_event_type_is_emitted_by_some_path() -> None:
    clock = ManualClock()
    sandbox = FakeSandbox()
    async with runtime(sandbox, config=roomy(max_running=1, rate_limit=4), clock=clock) as cx:
        ok = await cx.submit("a", script("out hi"))
        await cx.wait(ok.id, timeout=5)
        failed = await cx.submit("a", script("status internal_error"))
        await cx.wait(failed.id, timeout=5)
        stuck = await cx.submit("a", script("hang"))
        await eventually(lambda: bool(sandbox.active))
        queued = await cx.submit("a", script("out x"))
        await eventually(lambda: state(cx, queued.id) == "queued")
        await cx.cancel(queued.id, "a")
        await cx.wait(queued.id, timeout=5)
        with pytest.raises(AdmissionRefused):  # SubmissionRefused: over the rate limit
            await cx.submit("a", script("out x"))
        # What another API process admitted meanwhile, the coordinator rejects (backstop).
        limited = Execution.request(
            uuid4(), "a", script("out x"), Cause(clock.now(), uuid4(), None)
        )
        cx.store.record(limited.collect_events(), [limited])
        await eventually(lambda: cx.read_model.get(limited.id) is not None)
        await cx.wait(limited.id, timeout=5)
        clock.advance(3600)
        await cx.wait(stuck.id, timeout=5)
        running = await cx.submit("b", script("hang"))
        await eventually(lambda: state(cx, running.id) == "running")
        await cx.cancel(running.id, "b")
        await cx.wait(running.id, timeout=5)
        await eventually(lambda: not sandbox.active)
        assert cx.store is not None
        emitted = {event.type_name for _, event in cx.store.read_all()}
        assert emitted == EXECUTION_EVENT_TYPES


async def test_restart_with_queued_scheduled_and_running_work_finishes_everything(
    tmp_path: Path,
) -> None:
    sandbox = FakeSandbox()
    config = roomy(max_running=3)
    no_worker = ALL_ROLES - {"worker"}
    async with runtime(sandbox, config=config, data_dir=tmp_path, roles=no_worker) as cx:
        ids = [(await cx.submit("a", script("sleep 0.3\nout done"))).id for _ in range(5)]

        def states() -> list[str]:
            return sorted(state(cx, i) for i in ids)

        await eventually(lambda: states() == ["queued"] * 2 + ["scheduled"] * 3)
        scheduled = [i for i in ids if state(cx, i) == "scheduled"]
        queued = [i for i in ids if i not in scheduled]
    # Stopped with no grace: the runs in progress are lost, as when a server is killed.
    async with runtime(sandbox, config=config, data_dir=tmp_path, shutdown_grace_s=0) as cx:
        await eventually(lambda: [state(cx, i) for i in scheduled] == ["running"] * 3)
        assert [state(cx, i) for i in queued] == ["queued"] * 2
    async with runtime(sandbox, config=config, data_dir=tmp_path) as cx:
        for execution_id in scheduled:
            lost = await cx.wait(execution_id, timeout=5)
            assert lost.state == "failed" and "lost" in lost.message
        for execution_id in queued:
            assert (await cx.wait(execution_id, timeout=5)).status == "succeeded"
    assert all(count == 1 for count in sandbox.starts.values())
    assert len(sandbox.starts) == 5


async def test_live_output_is_recorded_while_a_silent_program_still_runs() -> None:
    async with runtime() as cx:
        view = await cx.submit("alice", script("out first\nsleep 0.5\nout last"))
        seen: list[bytes] = []
        async for event in cx.events(view.id):
            if event.type_name == "ExecutionOutput":
                seen.append(event.data)  # type: ignore[attr-defined]
                break
        assert seen == [b"first\n"]
        assert cx.get(view.id).state == "running"
        done = await cx.wait(view.id, timeout=5)
        assert done.stdout == b"first\nlast\n"


async def test_following_from_past_the_end_of_a_finished_execution_ends() -> None:
    async with runtime() as cx:
        view = await cx.submit("alice", script("out x"))
        done = await cx.wait(view.id, timeout=5)
        after = [e async for e in cx.events(view.id, after_version=done.version_seen)]
        assert after == []
        assert [e async for e in cx.events(uuid4())] == []


async def test_health_reports_every_role_running_until_stopped() -> None:
    cx = runtime()
    await cx.start()
    assert cx.healthy and {"relay", "coordinator", "worker", "saga"} <= set(cx.health())
    await cx.stop()
    assert not cx.healthy


async def test_a_second_runtime_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    from codeexec.runtime import DataDirInUse

    async with runtime(data_dir=tmp_path):
        second = runtime(data_dir=tmp_path)
        with pytest.raises(DataDirInUse, match="in use by pid"):
            await second.start()
    async with runtime(data_dir=tmp_path) as again:  # released by the first one's stop
        assert again.healthy
