"""UnitOfWork: the aggregates one handling touched, committed atomically with tracking."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar, cast
from uuid import UUID

from eventsourcing.persistence import Tracking

from codeexec.domain.aggregate import Aggregate, Cause
from codeexec.domain.events import DomainEvent
from codeexec.service.store import ExecutionStore

A = TypeVar("A", bound=Aggregate)


class UnitOfWork:
    """Collects new events from touched aggregates; `commit` records them in one write.
    Actions registered with `later` run only after that write succeeded, so a side effect
    (starting a sandbox) never happens for a decision that was not recorded."""

    def __init__(self, store: ExecutionStore, now: datetime) -> None:
        self.store = store
        self.now = now
        self._touched: dict[UUID, Aggregate] = {}
        self._after: list[Callable[[], object]] = []
        self.committed: list[DomainEvent] = []
        self.position: int | None = None  # store position of the event being handled

    def get(self, cls: type[A], aggregate_id: UUID, *, own_write: bool = False) -> A | None:
        """`own_write`: see `ExecutionStore.load` (only for a commit retried on conflict)."""
        if aggregate_id in self._touched:
            return cast(A, self._touched[aggregate_id])
        aggregate = self.store.load(cls, aggregate_id, own_write=own_write)
        if aggregate is not None:
            self._touched[aggregate_id] = aggregate
        return aggregate

    def add(self, aggregate: Aggregate) -> None:
        self._touched[aggregate.id] = aggregate

    def cause(self, event: DomainEvent) -> Cause:
        return Cause.of(event, self.now)

    def later(self, action: Callable[[], object]) -> None:
        self._after.append(action)

    def commit(self, tracking: Tracking | None = None) -> list[DomainEvent]:
        pending = sorted(p for a in self._touched.values() for p in a.collect_pending())
        events = [event for _, event in pending]
        try:
            if events or tracking is not None:
                self.store.record(events, list(self._touched.values()), tracking)
        except Exception:
            self.rollback()
            raise
        self.committed = events
        for action in self._after:
            action()
        self._after.clear()
        return events

    def rollback(self) -> None:
        """Drop everything: cached copies of touched aggregates may hold unrecorded state."""
        self.store.forget(list(self._touched))
        self._touched.clear()
        self._after.clear()
