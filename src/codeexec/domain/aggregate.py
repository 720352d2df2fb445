"""A minimal event-sourced aggregate base for pydantic events (eventsourcing's protocols)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from codeexec.domain.events import DomainEvent, derive_event_id


class IllegalTransition(Exception):
    """A command that the aggregate's current state does not allow."""


class Cause:
    """Who caused a new event: correlation and causation ids carried onto it."""

    __slots__ = ("causation_id", "correlation_id", "time")

    def __init__(self, time: datetime, correlation_id: UUID, causation_id: UUID | None) -> None:
        self.time = time
        self.correlation_id = correlation_id
        self.causation_id = causation_id

    @classmethod
    def of(cls, event: DomainEvent, time: datetime) -> Cause:
        return cls(time, event.correlation_id, event.event_id)


_TRIGGERED = itertools.count()

E = TypeVar("E", bound=DomainEvent)
A = TypeVar("A", bound="Aggregate")


class Aggregate:
    """Holds state folded from its events; commands append pending events via `_trigger`."""

    created_by: tuple[type[DomainEvent], ...] = ()
    """The event types that can start this aggregate's sequence (its identity check)."""

    def __init__(self, id: UUID, execution_id: UUID, user_id: str) -> None:
        self.id = id
        self.version = 0
        self.execution_id = execution_id
        self.user_id = user_id
        self._pending: list[tuple[int, DomainEvent]] = []

    def apply(self, event: DomainEvent) -> None:
        raise NotImplementedError

    def _trigger(self, event_cls: type[E], cause: Cause, **fields: Any) -> E:
        version = self.version + 1
        event = event_cls(
            event_id=derive_event_id(self.id, version),
            aggregate_id=self.id,
            aggregate_version=version,
            execution_id=self.execution_id,
            user_id=self.user_id,
            time=cause.time,
            correlation_id=cause.correlation_id,
            causation_id=cause.causation_id,
            **fields,
        )
        self._mutate(event)
        self._pending.append((next(_TRIGGERED), event))
        return event

    def _mutate(self, event: DomainEvent) -> None:
        self.apply(event)
        self.version = event.aggregate_version

    def collect_events(self) -> Sequence[DomainEvent]:
        return [event for _, event in self.collect_pending()]

    def collect_pending(self) -> list[tuple[int, DomainEvent]]:
        """New events with the order in which they happened across all aggregates, so one
        write that changes several aggregates records them in causal order."""
        events, self._pending = self._pending, []
        return events


def project(cls: type[A], aggregate: A | None, events: Iterable[Any]) -> A | None:
    """Fold events onto an aggregate (a projector function for eventsourcing's Repository)."""
    for event in events:
        if aggregate is None:
            if cls.created_by and not isinstance(event, cls.created_by):
                return None  # the id belongs to another kind of aggregate
            aggregate = cls(event.aggregate_id, event.execution_id, event.user_id)
        aggregate._mutate(event)
    return aggregate
