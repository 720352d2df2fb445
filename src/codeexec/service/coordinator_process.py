"""The coordinator role: applies the coordinator policy to requests, cancels and releases."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from uuid import UUID

from codeexec.domain.coordinator import Coordinator, CoordinatorConfig, Queued, Rejected
from codeexec.domain.events import (
    DomainEvent,
    ExecutionCancelled,
    ExecutionCancelRequested,
    ExecutionQueued,
    ExecutionRejected,
    ExecutionRequested,
    ExecutionScheduled,
    RejectionReason,
    SlotReleased,
)
from codeexec.domain.execution import Execution, State
from codeexec.domain.operations_events import LimitsChanged
from codeexec.domain.routing import EXECUTION_EVENTS
from codeexec.service.unit_of_work import UnitOfWork

_DECIDED = (ExecutionQueued, ExecutionRejected, ExecutionCancelled)
_LIMITED = (RejectionReason.RATE_LIMITED, RejectionReason.QUEUE_FULL)


class CoordinatorProcess:
    """Consumes `execution_events`; only what it schedules reaches `execution_tasks`."""

    group = "coordinator"
    topics: tuple[str, ...] = (EXECUTION_EVENTS,)
    _types = frozenset(
        {"ExecutionRequested", "ExecutionCancelRequested", "SlotReleased", "LimitsChanged"}
    )

    def __init__(
        self,
        config: CoordinatorConfig,
        languages: Callable[[], frozenset[str]],
        history: Callable[[], Iterable[DomainEvent]],
        latest_limits: Callable[[], LimitsChanged | None] = lambda: None,
    ) -> None:
        self.policy = Coordinator(config)
        self._languages = languages
        self._history = history
        self._latest_limits = latest_limits
        self.limits_version = 0  # of the last LimitsChanged applied (0: the settings')
        self.undecided: dict[UUID, ExecutionRequested] = {}

    def interested(self, event_type: str) -> bool:
        return event_type in self._types

    # -- rebuilding after a restart ---------------------------------------------------------

    def restore(self, events: Iterable[DomainEvent]) -> None:
        """Fold stored facts into a fresh policy; remember requests still undecided."""
        self.policy = Coordinator(self.policy.config)
        self.undecided.clear()
        for event in events:
            self.fold(event)

    def fold(self, event: DomainEvent) -> None:
        eid = event.execution_id
        if isinstance(event, ExecutionRequested):
            self.undecided[eid] = event
        elif isinstance(event, ExecutionQueued):
            self.undecided.pop(eid, None)
            at = event.time.timestamp()
            self.policy.restore_accepted(event.user_id, at, eid)
            self.policy.restore_queued(eid, event.user_id, event.priority, at)
        elif isinstance(event, ExecutionScheduled):
            self.policy.restore_scheduled(eid, event.user_id)
        elif isinstance(event, SlotReleased):
            self.policy.restore_released(eid)
        elif isinstance(event, ExecutionRejected | ExecutionCancelled):
            self.undecided.pop(eid, None)
            self.policy.restore_removed(eid)
        elif isinstance(event, LimitsChanged):
            self._apply_limits(event)

    def recover(self) -> None:
        self.restore(self._history())

    # -- live decisions -----------------------------------------------------------------------

    def decide_undecided(self, uow: UnitOfWork) -> None:
        """After a restart: decide, in order, requests whose decision was never recorded."""
        pending = list(self.undecided.values())
        self.undecided.clear()
        for request in pending:
            self.handle(request, uow)

    def handle(self, event: DomainEvent, uow: UnitOfWork) -> None:
        if isinstance(event, ExecutionRequested):
            self._on_request(event, uow)
        elif isinstance(event, ExecutionCancelRequested):
            if self.policy.cancel(event.execution_id) is not None:
                execution = uow.get(Execution, event.execution_id)
                if execution is not None and execution.state is State.QUEUED:
                    execution.cancel(uow.cause(event))
        elif isinstance(event, SlotReleased):
            self.policy.release(event.execution_id)
            self._schedule(event, uow)
        elif isinstance(event, LimitsChanged):
            # Higher caps may let queued work run now.
            self._apply_limits(event)
            self._schedule(event, uow)

    def _apply_limits(self, change: LimitsChanged) -> bool:
        """Apply a change newer than the limits in force (an older one, delivered after
        the store showed a newer, changes nothing)."""
        if change.aggregate_version <= self.limits_version:
            return False
        self.policy.set_config(change.limits.coordinator_config())
        self.limits_version = change.aggregate_version
        return True

    def _limits_changed_since(self) -> bool:
        """Whether the store holds limits newer than those in force, now applied. A change
        reaches this role on its own partition of the log, so requests recorded after it
        can arrive first, from others: before refusing one for a limit, the store is asked."""
        latest = self._latest_limits()
        return latest is not None and self._apply_limits(latest)

    def _on_request(self, event: ExecutionRequested, uow: UnitOfWork) -> None:
        execution = uow.get(Execution, event.execution_id)
        if execution is None or execution.state is not State.REQUESTED:
            return  # decided before (redelivery)
        cause = uow.cause(event)
        if execution.cancel_requested:
            execution.cancel(cause)
            return
        languages = self._languages()
        if languages and event.spec.language not in languages:
            execution.reject(
                cause, RejectionReason.INVALID, f"language {event.spec.language!r} is not available"
            )
            return
        decision = self.policy.submit(
            event.execution_id, event.user_id, event.priority, uow.now.timestamp()
        )
        if (
            isinstance(decision, Rejected)
            and decision.reason in _LIMITED
            and self._limits_changed_since()
        ):
            decision = self.policy.submit(
                event.execution_id, event.user_id, event.priority, uow.now.timestamp()
            )
        if isinstance(decision, Rejected):
            execution.reject(cause, decision.reason, decision.message)
        elif isinstance(decision, Queued):
            execution.queue(cause, decision.queue_depth)
            self._schedule(event, uow)

    def _schedule(self, event: DomainEvent, uow: UnitOfWork) -> None:
        for scheduled in self.policy.schedule(uow.now.timestamp()):
            execution = uow.get(Execution, scheduled.execution_id)
            if execution is None or execution.state is not State.QUEUED:
                self.policy.release(scheduled.execution_id)
                continue
            cause = uow.cause(event)
            cause.correlation_id = execution.correlation_id
            if execution.cancel_requested:
                execution.cancel(cause)
                self.policy.release(scheduled.execution_id)
            else:
                execution.schedule(cause)
