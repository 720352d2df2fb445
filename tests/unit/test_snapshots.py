"""A role started from a snapshot plus the log after it has the state a full fold gives."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.domain.events import TERMINAL_EVENT_TYPES, DomainEvent, ExecutionStarted
from codeexec.domain.limits import LimitsDocument, ResourceMaxima
from codeexec.ports.clock import ManualClock
from codeexec.ports.store_turn import store_turn
from codeexec.service.coordinator_process import CoordinatorProcess
from codeexec.service.retention import (
    CoordinatorRetention,
    Retention,
    RunsRetention,
    SagaRetention,
)
from codeexec.service.saga_orchestrator import SagaOrchestrator
from codeexec.service.snapshots import Shadow, SnapshotStore
from codeexec.service.store import ExecutionStore
from tests.unit.factories import eventually, roomy, runtime, script

Log = list[tuple[int, DomainEvent]]
CONFIG = roomy(max_running=3, per_user=2, rate_limit=6, rate_window_s=120, max_queued=5)


async def _workload() -> Log:
    """A history with every kind of fate: finished, failed, hanging (running at the end),
    queued behind the caps, rejected over the limits, cancelled, timed out, and a change
    of the limits; time passes between waves so rate windows open and close."""
    clock = ManualClock()
    sandbox = FakeSandbox()
    async with runtime(sandbox, config=CONFIG, clock=clock) as cx:
        ids = []
        for wave in range(4):
            for n in range(9):
                user = ("ann", "bo", "cy")[n % 3]
                program = ("out ok", "hang", "exit 2", "hang", "out x")[(wave + n) % 5]
                try:
                    ids.append((await cx.submit(user, script(program))).id)
                except Exception:
                    continue
            await asyncio.sleep(0.05)
            # Cancel one queued and one running execution (each frees differently).
            for state in ("queued", "running"):
                found = [i for i in ids if (await cx.commands.catch_up(i)).state == state]
                if found:
                    await cx.cancel(found[0])
            if wave == 1:
                document = LimitsDocument.from_config(CONFIG, ResourceMaxima(), False)
                await cx.operations.limits.change(
                    document.model_copy(update={"max_running": 4}), "a"
                )
            if wave == 2:
                clock.advance(cx.settings.saga_grace_s + 3600)  # deadlines pass
            await asyncio.sleep(0.1)
            clock.advance(61)
        await eventually(lambda: cx.store is not None and cx.store.max_position() > 50)
        assert cx.store is not None
        return list(cx.store.read_all())


@pytest.fixture(scope="module")
def history() -> Log:
    return asyncio.run(_workload())


def coordinator_state(events: Sequence[DomainEvent], now: float) -> object:
    process = CoordinatorProcess(CONFIG, frozenset, lambda: ())
    process.restore(events)
    policy = process.policy
    accepted = {u: policy._accepted.count(u, now, 120) for u in ("ann", "bo", "cy")}
    return (
        policy.status(),
        policy.config,
        sorted(process.undecided),
        sorted(policy._running.items()),
        accepted,
    )


def saga_state(events: Sequence[DomainEvent], now: float) -> object:
    saga = SagaOrchestrator(ExecutionStore(), ManualClock(), grace=timedelta(seconds=1))
    saga.restore(events)
    return saga.deadlines


def runs_state(events: Sequence[DomainEvent], now: float) -> object:
    running: dict[object, str] = {}
    for event in events:
        if isinstance(event, ExecutionStarted):
            running[event.execution_id] = event.worker_id
        elif isinstance(event, TERMINAL_EVENT_TYPES):
            running.pop(event.execution_id, None)
    return running


CASES: list[tuple[Callable[[], Retention], Callable[[Sequence[DomainEvent], float], object]]] = [
    (lambda: CoordinatorRetention(rate_window_s=120), coordinator_state),
    (SagaRetention, saga_state),
    (RunsRetention, runs_state),
]


def restored_at(new: Callable[[], Retention], history: Log, cut: int) -> Retention:
    """Follow the log to `cut` and round-trip a snapshot there."""
    retention = new()
    for position, event in history[:cut]:
        retention.add(position, event)
    snapshots = SnapshotStore(ExecutionStore())
    snapshots.save(retention.name, retention.position, retention.events())
    restored = new()
    latest = snapshots.latest(retention.name)
    assert latest is not None
    restored.load(*latest)
    return restored


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.floats(0, 1), case=st.sampled_from(CASES))
def test_snapshot_plus_tail_gives_the_state_of_a_full_fold(
    history: Log,
    cut: float,
    case: tuple[Callable[[], Retention], Callable[[Sequence[DomainEvent], float], object]],
) -> None:
    """Snapshot at one point of the log, then at every later point compare the state the
    retained events give with folding everything up to there (the states in between matter
    as much as the last one)."""
    new, state_of = case
    snapshot_at = round(cut * len(history))
    restored = restored_at(new, history, snapshot_at)
    for until in range(snapshot_at, len(history) + 1):
        if until > snapshot_at:
            restored.add(*history[until - 1])
        prefix = history[:until]
        now = max((e.time.timestamp() for _, e in prefix), default=0.0)  # the last decision
        full = state_of([event for _, event in prefix], now)
        assert state_of([e for _, e in restored.events()], now) == full, until


def test_retentions_keep_only_the_work_in_flight(history: Log) -> None:
    for new, _ in CASES:
        retention = new()
        for position, event in history:
            retention.add(position, event)
        assert len(retention) < len(history) / 2, retention.name


def test_a_shadow_saves_a_snapshot_every_n_events_and_restarts_from_it(history: Log) -> None:
    store = ExecutionStore()
    for _, event in history:
        store.record([event])
    snapshots = SnapshotStore(store)
    shadow = Shadow(store, snapshots, [RunsRetention()], every=10)
    shadow.restore()
    assert shadow.saved["worker"] == store.max_position()  # saved: it was far behind
    again = Shadow(store, snapshots, [RunsRetention()], every=10)
    again.restore()
    assert again.read == 0  # nothing after the snapshot: the history is not read again
    assert again["worker"].events() == shadow["worker"].events()


def _folded(history: Log) -> dict[str, list[tuple[int, DomainEvent]]]:
    """Each retention's events after folding the whole history (the reference)."""
    out = {}
    for new, _ in CASES:
        retention = new()
        for position, event in history:
            retention.add(position, event)
        out[retention.name] = retention.events()
    return out


def test_a_listening_shadow_is_fed_the_writes_and_restarts_from_its_snapshot(
    history: Log,
) -> None:
    """The one writer's shadow folds what the store records without reading the log back;
    its snapshots plus a restart give the state a full fold gives."""
    store = ExecutionStore()
    snapshots = SnapshotStore(store)
    shadow = Shadow(store, snapshots, [new() for new, _ in CASES], every=10, listen=True)
    shadow.restore()
    for n, (_, event) in enumerate(history):
        store.record([event])
        if n % 7 == 0:
            shadow.advance()  # saves the snapshots that are due
    shadow.advance()
    assert shadow.read == 0 and shadow.fed == len(history)  # the log was never read
    expected = _folded(history)
    for name, events in expected.items():
        assert shadow[name].events() == events, name
        assert shadow.saved[name] > 0, name  # snapshots were saved on the way
    again = Shadow(store, snapshots, [new() for new, _ in CASES], every=10, listen=True)
    again.restore()
    assert again.read < len(history)  # the tail after the snapshots, not the history
    for name, events in expected.items():
        assert again[name].events() == events, name


def test_a_listening_shadow_reads_the_log_after_a_gap_or_a_failed_turn(history: Log) -> None:
    store = ExecutionStore()
    shadow = Shadow(store, SnapshotStore(store), [RunsRetention()], listen=True)
    shadow.restore()
    half = len(history) // 2
    for _, event in history[:half]:
        store.record([event])
    store.position_listeners.remove(shadow._recorded)  # writes it is not told of: a gap
    for _, event in history[half:-1]:
        store.record([event])
    store.position_listeners.append(shadow._recorded)
    store.record([history[-1][1]])
    assert shadow.advance() > 0  # the gap is read from the log
    assert shadow["worker"].events() == _folded(history)["worker"]
    with store_turn() as turn:
        # A write the store reported, in a turn whose commit then failed (rolled back).
        shadow._recorded([store.max_position() + 1], [history[-1][1]])
        turn.abort()
    before = shadow.read
    shadow.advance()
    assert shadow.read > before  # started again from the snapshot and the log
    assert shadow["worker"].events() == _folded(history)["worker"]
    assert shadow["worker"].position == store.max_position()
