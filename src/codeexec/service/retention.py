"""What each stateful role keeps of the log: the events its live state still depends on.

A role's state (the coordinator's queue and slots, the saga deadlines, a worker's runs in
flight, the dead-letter and replay indexes) is a fold of a few event types, and most of
those events stop mattering once their execution (or saga) is over. A `Retention` follows
the log and keeps only the events that still matter, in log order: folding them gives the
role the same state as folding the whole history, at a cost that grows with the work in
flight, not with the history. Retained events are what a snapshot holds
(codeexec.service.snapshots)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from uuid import UUID

from codeexec.domain.events import (
    TERMINAL_EVENT_TYPES,
    DomainEvent,
    ExecutionCancelled,
    ExecutionQueued,
    ExecutionRejected,
    ExecutionRequested,
    ExecutionScheduled,
    ExecutionStarted,
    SagaCompleted,
    SagaStarted,
    SlotReleased,
)
from codeexec.domain.operations_events import LimitsChanged

Retained = tuple[int, DomainEvent]


def _names(*classes: type[DomainEvent]) -> frozenset[str]:
    return frozenset(cls.model_fields["type"].default for cls in classes)


class Retention:
    """Keeps, per key (an execution or aggregate), the events of `types` until `closes`
    says the key is over; subclasses say which keys close when."""

    name: str = ""
    types: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.position = 0  # the last log position folded in
        self._kept: dict[UUID, list[Retained]] = {}

    def key(self, event: DomainEvent) -> UUID:
        return event.execution_id

    def closes(self, event: DomainEvent, kept: Sequence[Retained]) -> bool:
        return False

    def add(self, position: int, event: DomainEvent) -> None:
        if position <= self.position:
            return  # folded before (a page read twice)
        self.position = position
        if event.type_name not in self.types:
            return
        key = self.key(event)
        kept = self._kept.get(key, [])
        if self.closes(event, kept):
            self._close(key, kept, position, event)
        else:
            self._kept.setdefault(key, kept).append((position, event))

    def _close(self, key: UUID, kept: list[Retained], position: int, event: DomainEvent) -> None:
        self._kept.pop(key, None)

    def advance_to(self, position: int) -> None:
        """Nothing of interest up to `position` (a filtered read returned no more)."""
        self.position = max(self.position, position)

    def events(self) -> list[Retained]:
        """The retained events in log order."""
        return sorted((r for kept in self._kept.values() for r in kept), key=lambda r: r[0])

    def clear(self) -> None:
        """Back to the start of the log (nothing folded)."""
        self._kept.clear()
        self.position = 0

    def load(self, position: int, events: Iterable[Retained]) -> None:
        """Start from a snapshot: its position and its retained events."""
        self.clear()
        for at, event in events:
            self.add(at, event)
        self.position = position

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._kept.values())


class CoordinatorRetention(Retention):
    """Requests not yet decided, queued and running executions, the latest limits, and the
    acceptances still inside a rate window (the rate limit counts them)."""

    name = "coordinator"
    types = _names(
        ExecutionRequested,
        ExecutionQueued,
        ExecutionScheduled,
        SlotReleased,
        ExecutionRejected,
        ExecutionCancelled,
        LimitsChanged,
    )
    LIMITS = UUID(int=1)

    def __init__(self, rate_window_s: float = 60.0) -> None:
        super().__init__()
        self.rate_window_s = rate_window_s
        self._lingering: deque[tuple[float, UUID]] = deque()  # closed, still rate-counted

    def key(self, event: DomainEvent) -> UUID:
        return self.LIMITS if isinstance(event, LimitsChanged) else event.execution_id

    def clear(self) -> None:
        super().clear()
        self._lingering.clear()

    def add(self, position: int, event: DomainEvent) -> None:
        if isinstance(event, LimitsChanged) and position > self.position:
            self._kept.pop(self.LIMITS, None)  # only the latest limits count
        super().add(position, event)
        self._forget_before(event.time.timestamp() - self.rate_window_s)

    def closes(self, event: DomainEvent, kept: Sequence[Retained]) -> bool:
        if isinstance(event, SlotReleased):
            return True
        if isinstance(event, ExecutionRejected | ExecutionCancelled):
            # A cancel of a running execution leaves its slot taken until it is released.
            return not any(isinstance(e, ExecutionScheduled) for _, e in kept)
        return False

    def _close(self, key: UUID, kept: list[Retained], position: int, event: DomainEvent) -> None:
        queued = [e for _, e in kept if isinstance(e, ExecutionQueued)]
        if not kept or not queued:
            self._kept.pop(key, None)
            return
        # Accepted lately: the acceptance still counts against the user's rate limit.
        # Its acceptance and its end are all that matter now (folded: counted, gone).
        self._kept[key] = [r for r in kept if isinstance(r[1], ExecutionQueued)]
        self._kept[key].append((position, event))
        self._lingering.append((queued[0].time.timestamp(), key))

    def _forget_before(self, cutoff: float) -> None:
        while self._lingering and self._lingering[0][0] < cutoff:
            _, key = self._lingering.popleft()
            self._kept.pop(key, None)


class SagaRetention(Retention):
    """The sagas begun and not completed (their deadlines)."""

    name = "saga"
    types = _names(SagaStarted, SagaCompleted)

    def key(self, event: DomainEvent) -> UUID:
        return event.aggregate_id

    def closes(self, event: DomainEvent, kept: Sequence[Retained]) -> bool:
        return isinstance(event, SagaCompleted)


class RunsRetention(Retention):
    """Runs started and not ended, whichever worker started them (each worker looks at
    its own)."""

    name = "worker"
    types = _names(ExecutionStarted, *TERMINAL_EVENT_TYPES)

    def closes(self, event: DomainEvent, kept: Sequence[Retained]) -> bool:
        return isinstance(event, TERMINAL_EVENT_TYPES)


class IndexRetention(Retention):
    """Every aggregate one event type begins (an index of dead letters, of replays)."""

    def __init__(self, name: str, type_name: str) -> None:
        super().__init__()
        self.name, self.types = name, frozenset({type_name})

    def key(self, event: DomainEvent) -> UUID:
        return event.aggregate_id

    def ids(self) -> list[UUID]:
        return [event.aggregate_id for _, event in self.events()]
