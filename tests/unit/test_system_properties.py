"""Stateful property test of the whole embedded system under random interleavings."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.domain.events import (
    TERMINAL_EVENT_TYPES,
    ExecutionQueued,
    ExecutionRequested,
    ExecutionScheduled,
    SlotReleased,
)
from codeexec.ports.clock import ManualClock
from codeexec.runtime import Codeexec
from tests.unit.factories import roomy, runtime, script

GLOBAL_CAP, USER_CAP = 3, 2
PROGRAMS = ["out x", "sleep 0.02\nout y", "hang", "status internal_error", "exit 2", "err e"]


class CountingSandbox(FakeSandbox):
    """Remembers the most runs ever active at once."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0

    async def start(self, sandbox_id, spec):  # type: ignore[no-untyped-def]
        run = await super().start(sandbox_id, spec)
        self.peak = max(self.peak, len(self.active))
        return run


class EmbeddedSystem(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.data_dir = Path(tempfile.mkdtemp(prefix="codeexec-prop-"))
        self.sandbox = CountingSandbox()
        self.clock = ManualClock()
        self.submitted: list[UUID] = []
        self.cx = self._start()

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def _start(self) -> Codeexec:
        config = roomy(max_running=GLOBAL_CAP, per_user=USER_CAP, max_queued=6, max_queue=10)
        # A short shutdown grace: quick runs finish across a restart, hanging ones are lost.
        cx = runtime(
            self.sandbox,
            config=config,
            data_dir=self.data_dir,
            clock=self.clock,
            shutdown_grace_s=0.05,
        )
        self._run(cx.start())
        return cx

    def _settle(self, seconds: float = 0.03) -> None:
        self._run(asyncio.sleep(seconds))

    @rule(
        user=st.sampled_from(["ann", "bo"]),
        priority=st.integers(0, 2),
        program=st.sampled_from(PROGRAMS),
    )
    def submit(self, user: str, priority: int, program: str) -> None:
        view = self._run(self.cx.submit(user, script(program), priority=priority))
        self.submitted.append(view.id)

    @precondition(lambda self: self.submitted)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        execution_id = data.draw(st.sampled_from(self.submitted))
        self._run(self.cx.cancel(execution_id))

    @rule(seconds=st.sampled_from([0.0, 0.01, 0.05]))
    def let_time_pass(self, seconds: float) -> None:
        self._settle(seconds)

    @rule()
    def pass_deadlines(self) -> None:
        self.clock.advance(600)
        self._settle()

    @rule()
    def restart(self) -> None:
        self._run(self.cx.stop())
        self.cx = self._start()

    @rule(
        group=st.sampled_from(["coordinator", "saga", "worker", "projections"]),
        forget=st.booleans(),
    )
    def redeliver(self, group: str, forget: bool) -> None:
        assert isinstance(self.cx.bus, InMemoryEventBus)
        self.cx.bus.redeliver(group, forget_commits=forget)
        self._settle(0.01)

    @invariant()
    def no_sandbox_started_twice_and_caps_hold(self) -> None:
        assert all(count == 1 for count in self.sandbox.starts.values())
        assert self.sandbox.peak <= GLOBAL_CAP
        self._check_slots()

    def _check_slots(self) -> None:
        assert self.cx.store is not None
        held: set[UUID] = set()
        by_user: Counter[str] = Counter()
        for _, event in self.cx.store.read_all():
            if isinstance(event, ExecutionScheduled):
                held.add(event.execution_id)
                by_user[event.user_id] += 1
            elif isinstance(event, SlotReleased):
                held.discard(event.execution_id)
                by_user[event.user_id] -= 1
            assert len(held) <= GLOBAL_CAP
            assert max(by_user.values(), default=0) <= USER_CAP

    def teardown(self) -> None:
        try:
            self._finish_everything()
            self._check_outcomes()
        finally:
            self._run(self.cx.stop())
            self.loop.close()
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _finish_everything(self) -> None:
        for _ in range(200):
            views = [self.cx.read_model.get(i) for i in self.submitted]
            if all(v is not None and v.terminal for v in views):
                return
            self.clock.advance(600)
            self._settle(0.02)
        raise AssertionError("some accepted submissions never reached a terminal state")

    def _check_outcomes(self) -> None:
        assert self.cx.store is not None
        terminals: Counter[UUID] = Counter()
        queued_at: dict[UUID, int] = {}
        scheduled_at: dict[UUID, int] = {}
        ended_at: dict[UUID, int] = {}
        key: dict[UUID, tuple[str, int]] = {}
        for position, event in self.cx.store.read_all():
            eid = event.execution_id
            if isinstance(event, ExecutionRequested):
                key[eid] = (event.user_id, event.priority)
            elif isinstance(event, ExecutionQueued):
                queued_at[eid] = position
            elif isinstance(event, ExecutionScheduled):
                scheduled_at[eid] = position
            elif isinstance(event, TERMINAL_EVENT_TYPES):
                terminals[eid] += 1
                ended_at.setdefault(eid, position)
        assert set(terminals) == set(self.submitted)
        assert all(n == 1 for n in terminals.values())
        # FIFO within a priority (per user, since a user at its cap may be overtaken by
        # another user): an earlier-queued peer is scheduled first or has left the queue.
        peers: dict[tuple[str, int], list[UUID]] = defaultdict(list)
        for eid in sorted(queued_at, key=queued_at.__getitem__):
            peers[key[eid]].append(eid)
        for group in peers.values():
            for i, later in enumerate(group):
                if later not in scheduled_at:
                    continue
                for earlier in group[:i]:
                    left = min(scheduled_at.get(earlier, 1 << 60), ended_at[earlier])
                    assert left < scheduled_at[later], self._history(earlier, later)

    def _history(self, *execution_ids: UUID) -> str:
        """The events of the executions a failed check is about, for the report."""
        assert self.cx.store is not None
        names = {eid: f"#{n}" for n, eid in enumerate(execution_ids)}
        lines = [
            f"{position} {names[e.execution_id]} {e.type_name}"
            for position, e in self.cx.store.read_all()
            if e.execution_id in names
        ]
        return "FIFO within a priority violated:\n" + "\n".join(lines)


TestEmbeddedSystem = EmbeddedSystem.TestCase
TestEmbeddedSystem.settings = settings(
    max_examples=50,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
