"""Operators' tools end to end: dead letters (poison events) and replay sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

import pytest

from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus, partition_for
from codeexec.adapters.memory_read_model import InMemoryExecutionReadModel
from codeexec.domain.aggregate import IllegalTransition
from codeexec.domain.dead_letter import DeadLetterConfig, DeadLetterState, RetryPolicy
from codeexec.domain.envelope import DomainEvent
from codeexec.domain.events import from_json
from codeexec.domain.limits import LimitsDocument, ResourceMaxima
from codeexec.domain.operations_events import ReplayFilter
from codeexec.domain.replay import ReplayState
from codeexec.domain.routing import EXECUTION_EVENTS, EXECUTION_TASKS, REPLAY_SCRATCH, TOPICS
from codeexec.ports.bus import Message
from codeexec.runtime import Codeexec, Settings
from codeexec.service.limits import StoredLimits
from codeexec.service.replays import InvalidReplay
from codeexec.service.unit_of_work import UnitOfWork
from tests.unit.factories import roomy, script
from tests.unit.test_runtime import OPERATIONS_EVENT_TYPES, eventually

PARTITIONS = TOPICS[EXECUTION_EVENTS].partitions


class Audit:
    """An embedder's consumer that fails on poisoned executions until it is fixed."""

    group = "audit"
    topics = (EXECUTION_EVENTS,)

    def __init__(self) -> None:
        self.poisoned: set[UUID] = set()
        self.fixed = False
        self.processed: list[UUID] = []
        self.open_letters_when_processed: dict[UUID, int] = {}
        self.runtime: Codeexec | None = None

    def interested(self, event_type: str) -> bool:
        return event_type == "ExecutionCompleted"

    def recover(self) -> None:
        pass

    def handle(self, event: DomainEvent, uow: UnitOfWork) -> None:
        if event.execution_id in self.poisoned and not self.fixed:
            raise RuntimeError(f"cannot audit {event.execution_id}")
        self.processed.append(event.execution_id)
        assert self.runtime is not None
        backlog = self.runtime.dead_letters.backlog()[0]
        self.open_letters_when_processed[event.execution_id] = backlog


def settings(data_dir: Path | None = None, retries: int = 2) -> Settings:
    policy = RetryPolicy(max_retries=retries, base_delay_s=0.01, max_delay_s=0.05)
    return Settings(
        data_dir=data_dir,
        coordinator=roomy(),
        consumer_max_attempts=2,
        timer_interval_s=0.02,
        dead_letters=DeadLetterConfig(default=policy, warning_backlog=1, critical_backlog=5),
    )


async def test_a_poison_event_is_retried_parked_shown_fixed_and_processed_once() -> None:
    audit = Audit()
    cx = Codeexec(settings(), sandbox=FakeSandbox(), processes=[audit])
    audit.runtime = cx
    async with cx:
        poison = await cx.submit("alice", script("out poison"))
        audit.poisoned.add(poison.id)
        await cx.wait(poison.id, timeout=5)
        await eventually(lambda: cx.dead_letters.backlog()[0] == 1)
        letter = cx.dead_letters.letters()[0]
        await eventually(lambda: cx.dead_letters.get(letter.id).state is DeadLetterState.EXHAUSTED)
        # Meanwhile the poison's partition keeps flowing.
        neighbours: list[UUID] = []
        while len(neighbours) < 3:
            view = await cx.submit("bob", script("out fine"))
            if partition_for(str(view.id), PARTITIONS) == partition_for(str(poison.id), PARTITIONS):
                neighbours.append(view.id)
            await cx.wait(view.id, timeout=5)
        await eventually(lambda: set(neighbours) <= set(audit.processed))
        assert all(audit.open_letters_when_processed[n] == 1 for n in neighbours)
        letter = cx.dead_letters.get(letter.id)
        assert letter.attempt == 2 and "cannot audit" in letter.last_error
        assert letter.parked is not None and letter.parked.group == "audit"
        assert cx.dead_letters.backlog() == (1, "warning")
        audit.fixed = True
        await cx.dead_letters.retry(letter.id, by="root")
        await eventually(lambda: cx.dead_letters.get(letter.id).state is DeadLetterState.RESOLVED)
        assert audit.processed.count(poison.id) == 1
        assert cx.dead_letters.backlog() == (0, "ok")


async def test_admins_discard_or_archive_open_dead_letters_only() -> None:
    audit = Audit()
    cx = Codeexec(settings(retries=0), sandbox=FakeSandbox(), processes=[audit])
    audit.runtime = cx
    async with cx:
        for _ in range(2):
            view = await cx.submit("alice", script("out x"))
            audit.poisoned.add(view.id)
            await cx.wait(view.id, timeout=5)
        await eventually(lambda: len(cx.dead_letters.letters()) == 2)
        first, second = cx.dead_letters.letters()
        assert (
            cx.dead_letters.discard(first.id, "root", "obsolete").state is DeadLetterState.DISCARDED
        )
        assert cx.dead_letters.archive(second.id, "root").state is DeadLetterState.ARCHIVED
        with pytest.raises(IllegalTransition):
            cx.dead_letters.archive(first.id, "root")
        with pytest.raises(LookupError):
            cx.dead_letters.get(UUID(int=1))


async def submit_and_finish(cx: Codeexec, n: int) -> list[UUID]:
    ids = [(await cx.submit(f"user{i % 3}", script(f"out {i}"))).id for i in range(n)]
    for execution_id in ids:
        await cx.wait(execution_id, timeout=5)
    await eventually(lambda: cx.saga.deadlines == {})
    return ids


async def test_a_replay_across_a_pause_and_a_restart_sends_each_event_once_and_rebuilds(
    tmp_path: Path,
) -> None:
    bus = InMemoryEventBus()
    sandbox = FakeSandbox()
    async with Codeexec(settings(tmp_path), sandbox=sandbox, bus=bus) as cx:
        await submit_and_finish(cx, 12)
        reader = await bus.subscribe("replay-reader", [REPLAY_SCRATCH])
        assert cx.store is not None
        stored = {e.event_id for _, e in cx.store.read_all()}
        session = cx.replays.create(
            "root", ReplayFilter(), REPLAY_SCRATCH, batch_size=10, rate_per_s=400
        )
        await eventually(lambda: cx.replays.get(session.id).position >= 20)
        cx.replays.pause(session.id, "root")
        paused_at = cx.replays.get(session.id).position
        live = {v.id: v for v in cx.list_all()}
    async with Codeexec(settings(tmp_path), sandbox=sandbox, bus=bus) as cx:
        assert cx.replays.get(session.id).state is ReplayState.PAUSED
        assert cx.replays.get(session.id).position == paused_at
        cx.replays.resume(session.id, "root")
        await eventually(lambda: cx.replays.get(session.id).state is ReplayState.COMPLETED)
        done = cx.replays.get(session.id)
    received = await reader.poll(100_000, timeout=0)
    ids = [from_json(m.value).event_id for m in received]
    assert len(ids) == len(set(ids)) == len(stored) and set(ids) == stored
    assert done.sent == len(stored) and done.matched == len(stored) and done.failed == 0
    rebuilt = InMemoryExecutionReadModel()
    for message in received:
        rebuilt.apply(from_json(message.value), message.position)
    rebuilt_views = {v.id: v for v in rebuilt.list_all()}
    diffs = {
        (k, f): (getattr(live[k], f), getattr(rebuilt_views[k], f))
        for k in live
        for f in live[k].__dataclass_fields__
        if getattr(live[k], f) != getattr(rebuilt_views[k], f)
    }
    assert not diffs
    assert rebuilt_views == live
    assert {m.headers["replay-session"] for m in received} == {str(session.id)}


async def test_replayed_requests_and_tasks_never_run_code_again() -> None:
    sandbox = FakeSandbox()
    async with Codeexec(settings(), sandbox=sandbox) as cx:
        await submit_and_finish(cx, 5)
        before = dict(sandbox.starts)
        views = {v.id: v for v in cx.list_all()}
        for topic in (EXECUTION_EVENTS, EXECUTION_TASKS):
            session = cx.replays.create("root", ReplayFilter(), topic)
            await eventually(lambda s=session: cx.replays.get(s.id).finished)
        for _ in range(1000):  # the worker group catches up (its lag, from the bus)
            if not (await cx.backlog()).get("worker", 0):
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError("the worker group did not catch up")
        assert dict(sandbox.starts) == before
        assert {v.id: v for v in cx.list_all()} == views


async def test_replay_filters_dry_runs_and_bad_requests() -> None:
    async with Codeexec(settings(), sandbox=FakeSandbox()) as cx:
        ids = await submit_and_finish(cx, 6)
        only = ReplayFilter(event_types=("ExecutionCompleted",), user_id="user1")
        dry = cx.replays.create("root", only, REPLAY_SCRATCH, dry_run=True)
        await eventually(lambda: cx.replays.get(dry.id).finished)
        assert cx.replays.get(dry.id).matched == 2 and cx.replays.get(dry.id).sent == 0
        one = ReplayFilter(execution_ids=(ids[0],))
        session = cx.replays.create("root", one, REPLAY_SCRATCH)
        await eventually(lambda: cx.replays.get(session.id).finished)
        # Six execution events (requested ... completed) and three of its saga.
        assert cx.replays.get(session.id).matched == 9
        later = ReplayFilter(since=cx.clock.now())
        empty = cx.replays.create("root", later, REPLAY_SCRATCH)
        await eventually(lambda: cx.replays.get(empty.id).finished)
        assert cx.replays.get(empty.id).matched == 0
        with pytest.raises(InvalidReplay, match="target_topic"):
            cx.replays.create("root", ReplayFilter(), "nowhere")
        cancelled = cx.replays.create("root", ReplayFilter(), REPLAY_SCRATCH, rate_per_s=1)
        cx.replays.cancel(cancelled.id, "root")
        assert cx.replays.get(cancelled.id).state is ReplayState.CANCELLED
        with pytest.raises(IllegalTransition):
            cx.replays.resume(cancelled.id, "root")


async def test_every_operations_event_type_is_emitted() -> None:
    audit = Audit()
    cx = Codeexec(settings(), sandbox=FakeSandbox(), processes=[audit])
    audit.runtime = cx
    async with cx:
        for _ in range(3):
            view = await cx.submit("alice", script("out x"))
            audit.poisoned.add(view.id)
            await cx.wait(view.id, timeout=5)
        await eventually(lambda: len(cx.dead_letters.letters()) == 3)
        await eventually(
            lambda: all(d.state is DeadLetterState.EXHAUSTED for d in cx.dead_letters.letters())
        )
        first, second, third = cx.dead_letters.letters()
        cx.dead_letters.discard(first.id, "root")
        cx.dead_letters.archive(second.id, "root")
        audit.fixed = True
        await cx.dead_letters.retry(third.id, "root")
        await eventually(lambda: cx.dead_letters.get(third.id).state is DeadLetterState.RESOLVED)
        session = cx.replays.create(
            "root", ReplayFilter(), REPLAY_SCRATCH, rate_per_s=50, batch_size=1
        )
        cx.replays.pause(session.id, "root")
        cx.replays.resume(session.id, "root")
        await eventually(lambda: cx.replays.get(session.id).position >= 1)
        cx.replays.cancel(session.id, "root")
        finished = cx.replays.create("root", ReplayFilter(until_position=3), REPLAY_SCRATCH)
        await eventually(lambda: cx.replays.get(finished.id).finished)
        assert cx.store is not None
        limits = StoredLimits(cx.store, LimitsDocument(max_resource_limits=ResourceMaxima()))
        limits.change(limits.current().model_copy(update={"max_queue": 7}), "root", cx.clock.now())
        await eventually(lambda: cx.coordinator.policy.config.max_queue == 7)
        emitted = {e.type_name for _, e in cx.store.read_all()}
        assert emitted >= OPERATIONS_EVENT_TYPES


async def test_operator_tools_refuse_what_would_break_them() -> None:
    async with Codeexec(settings(), sandbox=FakeSandbox()) as cx:
        ids = await submit_and_finish(cx, 1)
        with pytest.raises(InvalidReplay, match="target_topic"):
            cx.replays.create("root", ReplayFilter(), "dead_letters")
        with pytest.raises(InvalidReplay, match="until_position"):
            cx.replays.create("root", ReplayFilter(until_position=10**6), REPLAY_SCRATCH)
        with pytest.raises(LookupError):
            cx.replays.get(ids[0])  # an execution's id is no replay session
        with pytest.raises(LookupError):
            cx.dead_letters.get(ids[0])
        # A stray message on the DLQ topic (nobody parked it) is ignored, not fatal.
        await cx.bus.publish([Message("dead_letters", "k", b"{}", {})])
        await eventually(lambda: cx.bus.backlog("dead-letter-manager") == 0)  # type: ignore[attr-defined]
        assert cx.healthy and cx.dead_letters.letters() == []


async def test_a_slowly_paced_replay_does_not_hold_up_another() -> None:
    async with Codeexec(settings(), sandbox=FakeSandbox()) as cx:
        await submit_and_finish(cx, 3)
        slow = cx.replays.create("root", ReplayFilter(), REPLAY_SCRATCH, batch_size=1, rate_per_s=1)
        fast = cx.replays.create("root", ReplayFilter(), REPLAY_SCRATCH)
        await eventually(lambda: cx.replays.get(fast.id).finished, timeout=3)
        assert not cx.replays.get(slow.id).finished
        assert cx.replays.get(fast.id).created_at is not None
