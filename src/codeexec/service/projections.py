"""The projection role: keeps the execution read model and wakes live event followers."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from uuid import UUID

from codeexec.domain.events import TERMINAL_EVENT_TYPES, DomainEvent
from codeexec.domain.routing import EXECUTION_EVENTS
from codeexec.ports.read_model import ExecutionReadModel
from codeexec.service.unit_of_work import UnitOfWork


class Signal(asyncio.Event):
    """A follower's wake-up. `ended`: one of the wake-ups came with the execution's end
    (a terminal event recorded or folded into the views), so a waiter for the result reads
    the view only then, not on every event of the run."""

    ended = False


class ExecutionFeed:
    """Wakes whoever follows an execution's events (SSE, `events()`, `wait()`)."""

    def __init__(self) -> None:
        self._waiters: dict[UUID, set[Signal]] = defaultdict(set)

    def notify(self, execution_id: UUID, ended: bool = False) -> None:
        for signal in self._waiters.get(execution_id, ()):
            signal.ended = signal.ended or ended
            signal.set()

    def watch(self, execution_id: UUID) -> Signal:
        signal = Signal()
        self._waiters[execution_id].add(signal)
        return signal

    def unwatch(self, execution_id: UUID, signal: asyncio.Event) -> None:
        waiters = self._waiters.get(execution_id)
        if waiters is not None:
            waiters.discard(signal)
            if not waiters:
                del self._waiters[execution_id]


class ProjectionProcess:
    group = "projections"
    topics: tuple[str, ...] = (EXECUTION_EVENTS,)
    tracks = False  # in memory, rebuilt from the store on every start

    def __init__(self, read_model: ExecutionReadModel, feed: ExecutionFeed) -> None:
        self.read_model, self.feed = read_model, feed

    def interested(self, event_type: str) -> bool:
        return True

    def recover(self) -> None:
        pass  # applying is idempotent

    def handle(self, event: DomainEvent, uow: UnitOfWork) -> None:
        self.read_model.apply(event, uow.position)
        self.feed.notify(event.execution_id, isinstance(event, TERMINAL_EVENT_TYPES))
