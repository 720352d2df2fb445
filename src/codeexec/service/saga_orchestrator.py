"""The saga orchestrator role: drives each execution's saga and enforces its deadline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from uuid import UUID

from codeexec.domain.aggregate import Cause
from codeexec.domain.events import (
    TERMINAL_EVENT_TYPES,
    DomainEvent,
    ExecutionCancelRequested,
    ExecutionScheduled,
    SagaCompleted,
    SagaStarted,
)
from codeexec.domain.execution import Execution
from codeexec.domain.routing import EXECUTION_EVENTS
from codeexec.domain.saga import ExecutionSaga, saga_id_for
from codeexec.ports.clock import Clock
from codeexec.service.store import ExecutionStore
from codeexec.service.store_thread import StoreThread
from codeexec.service.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

_TERMINAL = frozenset(cls.model_fields["type"].default for cls in TERMINAL_EVENT_TYPES)


class SagaOrchestrator:
    group = "saga"
    topics: tuple[str, ...] = (EXECUTION_EVENTS,)

    def __init__(
        self,
        store: ExecutionStore,
        clock: Clock,
        *,
        grace: timedelta = timedelta(seconds=30),
        history: Callable[[], Iterable[DomainEvent]] = tuple,
    ) -> None:
        self.store, self.clock, self.grace = store, clock, grace
        self._history = history
        self.deadlines: dict[UUID, datetime] = {}  # saga id -> deadline, for active sagas
        self._stopping = asyncio.Event()

    def interested(self, event_type: str) -> bool:
        return event_type in _TERMINAL or event_type in (
            "ExecutionScheduled",
            "ExecutionCancelRequested",
        )

    def restore(self, events: Iterable[DomainEvent]) -> None:
        self.deadlines.clear()
        for event in events:
            self.fold(event)

    def fold(self, event: DomainEvent) -> None:
        if isinstance(event, SagaStarted):
            self.deadlines[event.aggregate_id] = event.deadline
        elif isinstance(event, SagaCompleted):
            self.deadlines.pop(event.aggregate_id, None)

    def recover(self) -> None:
        self.restore(self._history())

    def handle(self, event: DomainEvent, uow: UnitOfWork) -> None:
        saga_id = saga_id_for(event.execution_id)
        saga = uow.get(ExecutionSaga, saga_id)
        cause = uow.cause(event)
        if isinstance(event, ExecutionScheduled):
            if saga is not None:
                return  # redelivery: the saga already began
            execution = uow.get(Execution, event.execution_id)
            if execution is None:
                return
            saga = ExecutionSaga.begin(execution, cause, self.grace)
            uow.add(saga)
            deadline = saga.deadline
            assert deadline is not None
            uow.later(lambda: self.deadlines.__setitem__(saga_id, deadline))
        elif saga is None or saga.completed:
            return
        elif isinstance(event, ExecutionCancelRequested):
            saga.request_stop(cause, "cancel")
        elif event.type_name in _TERMINAL:
            saga.compensate(cause, outcome=event.type_name)
            uow.later(lambda: self.deadlines.pop(saga_id, None))

    def active(self, store: ExecutionStore) -> list[ExecutionSaga]:
        sagas = (store.load(ExecutionSaga, saga_id) for saga_id in list(self.deadlines))
        return [saga for saga in sagas if saga is not None and not saga.completed]

    def overdue(self, now: datetime) -> list[UUID]:
        return [saga_id for saga_id, deadline in self.deadlines.items() if now >= deadline]

    def tick(self) -> int:
        """Time out every execution whose saga passed its deadline. Returns how many.
        (It reads and writes the store: call it in the store thread.)"""
        now = self.clock.now()
        count = 0
        for saga_id in self.overdue(now):
            uow = UnitOfWork(self.store, now)
            saga = uow.get(ExecutionSaga, saga_id)
            if saga is None or saga.completed:
                self.deadlines.pop(saga_id, None)
                continue
            execution = uow.get(Execution, saga.execution_id)
            assert execution is not None
            # The output it recorded stays in the result (a lost run's last words).
            recorded = () if execution.is_terminal else self.store.events_of(execution.id)
            saga.on_deadline(execution, Cause(now, execution.correlation_id, None), recorded)
            try:
                uow.commit()
                count += 1
            except Exception:
                log.warning("could not time out %s; will retry", saga_id, exc_info=True)
            # The saga completes (and releases the slot) when it sees the terminal event.
            self.deadlines[saga_id] = now + timedelta(seconds=5)
        return count

    async def run_timer(self, io: StoreThread, interval_s: float = 0.25) -> None:
        while not self._stopping.is_set():
            try:
                await io.run(self.tick)
            except Exception as error:
                # A busy store must not end the timer: the deadlines are checked again.
                log.warning("saga timer could not run: %s", error)
            try:
                await asyncio.wait_for(self._stopping.wait(), interval_s)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stopping.set()
