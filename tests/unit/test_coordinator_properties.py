"""Coordinator fairness and caps under random interleavings, restarts and redelivery."""

from __future__ import annotations

import math
from dataclasses import dataclass
from random import Random
from typing import Any
from uuid import UUID

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from codeexec.domain.coordinator import (
    Coordinator,
    CoordinatorConfig,
    Dequeued,
    Queued,
    Rejected,
    UserLimits,
)
from codeexec.domain.events import RejectionReason

USERS = ("ann", "bob", "cid")
# The rate window stays the same per user across configs so the oracle below stays exact.
CID = UserLimits(rate_limit=5, rate_window_s=20, max_running=1, max_queued=3)
CONFIGS = (
    CoordinatorConfig(
        max_running=3,
        max_queue=6,
        aging_interval_s=10,
        default_user_limits=UserLimits(rate_limit=4, rate_window_s=30, max_running=2, max_queued=4),
        user_limits={"cid": CID},
    ),
    CoordinatorConfig(
        max_running=1,
        max_queue=3,
        aging_interval_s=5,
        default_user_limits=UserLimits(rate_limit=2, rate_window_s=30, max_running=1, max_queued=2),
        user_limits={"cid": CID},
    ),
    CoordinatorConfig(
        max_running=5,
        max_queue=9,
        aging_interval_s=20,
        default_user_limits=UserLimits(rate_limit=7, rate_window_s=30, max_running=4, max_queued=6),
    ),
)
FINAL_STATES = frozenset({"rejected", "released", "cancelled"})


@dataclass(frozen=True)
class Waiting:
    user_id: str
    priority: int
    enqueued_at: float
    order: int


class CoordinatorMachine(RuleBasedStateMachine):
    """Drives a live Coordinator against a plain model that decides everything by brute force."""

    def __init__(self) -> None:
        super().__init__()
        self.config = CONFIGS[0]
        self.coordinator = Coordinator(self.config)
        self.now = 0.0
        self.next_id = 0
        self.order = 0
        self.state: dict[UUID, str] = {}  # exactly one of queued/running/+FINAL_STATES
        self.waiting: dict[UUID, Waiting] = {}
        self.running: dict[UUID, str] = {}
        self.accepted_at: dict[str, list[float]] = {u: [] for u in USERS}
        self.ever_scheduled: set[UUID] = set()
        self.facts: list[tuple[str, tuple[Any, ...]]] = []
        # After a config change lowers a cap, counts may sit above it until work drains.
        self.allowed_over = (0, 0, {u: 0 for u in USERS}, {u: 0 for u in USERS})

    # --- model helpers ----------------------------------------------------------------

    def ids(self, *states: str) -> list[UUID]:
        return sorted(i for i, s in self.state.items() if s in states)

    def running_of(self, user_id: str) -> int:
        return sum(1 for u in self.running.values() if u == user_id)

    def queued_of(self, user_id: str) -> int:
        return sum(1 for w in self.waiting.values() if w.user_id == user_id)

    def eligible(self, user_id: str) -> bool:
        return self.running_of(user_id) < self.config.limits_for(user_id).max_running

    def rank(self, w: Waiting) -> tuple[int, int]:
        aged = math.floor((self.now - w.enqueued_at) / self.config.aging_interval_s)
        return (w.priority + aged, -w.order)

    # --- rules ------------------------------------------------------------------------

    @rule(user_id=st.sampled_from(USERS), priority=st.sampled_from([0, 1, 2, 3, 3, 9]))
    def submit(self, user_id: str, priority: int) -> None:
        execution_id = UUID(int=self.next_id)
        self.next_id += 1
        limits = self.config.limits_for(user_id)
        recent = [t for t in self.accepted_at[user_id] if t > self.now - limits.rate_window_s]
        answer = self.coordinator.submit(execution_id, user_id, priority, self.now)
        if len(recent) >= limits.rate_limit:
            expected: RejectionReason | None = RejectionReason.RATE_LIMITED
        elif (
            self.queued_of(user_id) >= limits.max_queued
            or len(self.waiting) >= self.config.max_queue
        ):
            expected = RejectionReason.QUEUE_FULL
        else:
            expected = None
        if expected is not None:
            assert isinstance(answer, Rejected) and answer.reason == expected, answer
            self.state[execution_id] = "rejected"
            return
        assert answer == Queued(execution_id, len(self.waiting) + 1)
        self.accepted_at[user_id].append(self.now)
        self.waiting[execution_id] = Waiting(user_id, priority, self.now, self.order)
        self.order += 1
        self.state[execution_id] = "queued"
        self.facts.append(("accepted", (user_id, self.now, execution_id)))
        self.facts.append(("queued", (execution_id, user_id, priority, self.now)))

    @precondition(lambda self: self.ids("queued", "running", "released", "cancelled"))
    @rule(data=st.data())
    def resubmit_a_known_execution(self, data: st.DataObject) -> None:
        known = self.ids("queued", "running", "released", "cancelled")
        execution_id = data.draw(st.sampled_from(known))
        answer = self.coordinator.submit(execution_id, "ann", 0, self.now)
        if self.state[execution_id] in ("queued", "running"):
            assert answer == Queued(execution_id, len(self.waiting))
        else:
            assert isinstance(answer, Rejected) and answer.reason == RejectionReason.INVALID

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 4.0, 10.0, 25.0]))
    def advance_time(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def schedule(self) -> None:
        picks = self.coordinator.schedule(self.now)
        for pick in picks:
            b = pick.execution_id
            assert b in self.waiting and b not in self.ever_scheduled
            assert len(self.running) < self.config.max_running
            assert self.eligible(pick.user_id)
            wb = self.waiting[b]
            assert pick.user_id == wb.user_id
            candidates = {i: w for i, w in self.waiting.items() if self.eligible(w.user_id)}
            for w in candidates.values():  # FIFO within a priority among eligible entries
                assert not (w.priority == wb.priority and w.order < wb.order)
            assert b == max(candidates, key=lambda i: self.rank(candidates[i]))
            del self.waiting[b]
            self.running[b] = pick.user_id
            self.state[b] = "running"
            self.ever_scheduled.add(b)
            self.facts.append(("scheduled", (b, pick.user_id)))
        at_cap = len(self.running) >= self.config.max_running
        assert at_cap or not any(self.eligible(w.user_id) for w in self.waiting.values())

    @precondition(lambda self: self.state)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        execution_id = data.draw(st.sampled_from(sorted(self.state)))
        answer = self.coordinator.cancel(execution_id)
        if self.state[execution_id] == "queued":
            assert answer == Dequeued(execution_id)
            del self.waiting[execution_id]
            self.state[execution_id] = "cancelled"
        else:
            assert answer is None
        self.facts.append(("removed", (execution_id,)))

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        execution_id = data.draw(st.sampled_from(sorted(self.running)))
        self.coordinator.release(execution_id)
        del self.running[execution_id]
        self.state[execution_id] = "released"
        self.facts.append(("released", (execution_id,)))

    @precondition(lambda self: self.ids("released", "cancelled", "queued"))
    @rule(data=st.data())
    def release_again_or_before_running(self, data: st.DataObject) -> None:
        execution_id = data.draw(st.sampled_from(self.ids("released", "cancelled", "queued")))
        self.coordinator.release(execution_id)
        if self.state[execution_id] == "queued":  # ended before it ran: leaves the queue
            del self.waiting[execution_id]
            self.state[execution_id] = "released"
        self.facts.append(("released", (execution_id,)))

    @rule(config=st.sampled_from(CONFIGS))
    def change_config(self, config: CoordinatorConfig) -> None:
        self.config = config
        self.coordinator.set_config(config)
        self.allowed_over = (
            len(self.running),
            len(self.waiting),
            {u: self.running_of(u) for u in USERS},
            {u: self.queued_of(u) for u in USERS},
        )

    @rule(seed=st.integers(0, 2**32 - 1))
    def restart(self, seed: int) -> None:
        """Fold the stored facts into a fresh coordinator and carry on with it. Redelivery is
        simulated harshly: stray earlier facts (or the same one again) arrive mid-fold, then
        a whole tail of the stream arrives again."""
        rnd = Random(seed)
        rebuilt = Coordinator(self.config)
        for position, (kind, args) in enumerate(self.facts):
            getattr(rebuilt, f"restore_{kind}")(*args)
            if rnd.random() < 0.3:
                stray_kind, stray_args = self.facts[rnd.randint(0, position)]
                getattr(rebuilt, f"restore_{stray_kind}")(*stray_args)
        for kind, args in self.facts[rnd.randrange(len(self.facts) + 1) :]:
            getattr(rebuilt, f"restore_{kind}")(*args)
        assert rebuilt.status() == self.coordinator.status()
        for execution_id in self.state:
            assert rebuilt.is_queued(execution_id) == self.coordinator.is_queued(execution_id)
            assert rebuilt.is_running(execution_id) == self.coordinator.is_running(execution_id)
        self.coordinator = rebuilt

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def every_execution_is_in_exactly_the_state_the_model_says(self) -> None:
        for execution_id, state in self.state.items():
            queued = self.coordinator.is_queued(execution_id)
            running = self.coordinator.is_running(execution_id)
            assert (queued, running) == (state == "queued", state == "running"), state
            assert state in FINAL_STATES or state in ("queued", "running")

    @invariant()
    def status_matches_the_model(self) -> None:
        status = self.coordinator.status()
        assert status.queued == len(self.waiting)
        assert status.running == len(self.running)
        assert status.max_queue == self.config.max_queue
        assert status.max_running == self.config.max_running
        assert status.running_by_user == {
            u: self.running_of(u) for u in USERS if self.running_of(u)
        }
        assert status.queued_by_user == {u: self.queued_of(u) for u in USERS if self.queued_of(u)}
        by_priority: dict[int, int] = {}
        for w in self.waiting.values():
            by_priority[w.priority] = by_priority.get(w.priority, 0) + 1
        assert status.queued_by_priority == by_priority

    @invariant()
    def caps_and_queue_bounds_hold(self) -> None:
        status = self.coordinator.status()
        running_over, queued_over, user_running_over, user_queued_over = self.allowed_over
        # Counts left over a lowered cap may only drain: tighten the allowance as they do.
        self.allowed_over = (
            min(running_over, status.running),
            min(queued_over, status.queued),
            {u: min(n, status.running_by_user.get(u, 0)) for u, n in user_running_over.items()},
            {u: min(n, status.queued_by_user.get(u, 0)) for u, n in user_queued_over.items()},
        )
        assert status.running <= max(self.config.max_running, running_over)
        assert status.queued <= max(self.config.max_queue, queued_over)
        for u in USERS:
            limits = self.config.limits_for(u)
            assert status.running_by_user.get(u, 0) <= max(limits.max_running, user_running_over[u])
            assert status.queued_by_user.get(u, 0) <= max(limits.max_queued, user_queued_over[u])


CoordinatorMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=60, deadline=None
)
test_coordinator_state_machine = CoordinatorMachine.TestCase
