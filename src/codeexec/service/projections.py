"""The projection role: keeps the execution read model and wakes live event followers."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from uuid import UUID

from codeexec.domain.events import DomainEvent
from codeexec.domain.routing import EXECUTION_EVENTS
from codeexec.ports.read_model import ExecutionReadModel
from codeexec.service.unit_of_work import UnitOfWork


class ExecutionFeed:
    """Wakes whoever follows an execution's events (SSE, `events()`, `wait()`)."""

    def __init__(self) -> None:
        self._waiters: dict[UUID, set[asyncio.Event]] = defaultdict(set)

    def notify(self, execution_id: UUID) -> None:
        for signal in self._waiters.get(execution_id, ()):
            signal.set()

    def watch(self, execution_id: UUID) -> asyncio.Event:
        signal = asyncio.Event()
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
        self.feed.notify(event.execution_id)
