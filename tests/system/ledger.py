"""Ledger: what the shared event store and the persisted read model say about each execution,
read directly from the store (PostgreSQL or MongoDB, not through any codeexec process), for
the system tests' assertions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from uuid import UUID

from codeexec.domain.events import (
    TERMINAL_EVENT_TYPES,
    DomainEvent,
    ExecutionOutput,
    ExecutionStarted,
)
from codeexec.ports.read_model import ExecutionView
from codeexec.service.store import ExecutionStore
from codeexec.service.store_config import StoreConfig


@dataclass
class History:
    """One execution's events as the store has them, in store order."""

    events: list[DomainEvent] = field(default_factory=list)

    @property
    def own(self) -> list[DomainEvent]:
        """The execution aggregate's events (not its saga's): what its view folds."""
        return [e for e in self.events if e.aggregate_id == e.execution_id]

    @property
    def last_version(self) -> int:
        return max((e.aggregate_version for e in self.own), default=0)

    @property
    def starts(self) -> list[ExecutionStarted]:
        return [e for e in self.events if isinstance(e, ExecutionStarted)]

    @property
    def terminals(self) -> list[DomainEvent]:
        return [e for e in self.own if isinstance(e, TERMINAL_EVENT_TYPES)]

    def stdout(self) -> bytes:
        return b"".join(
            e.data
            for e in self.own
            if isinstance(e, ExecutionOutput) and e.stream == "stdout" and e.stage == "run"
        )


class Ledger:
    """Every execution's history, read from the store's notification log; `refresh()` reads
    what was recorded since the last call (the store is read, never written: no table or
    function is created, which would race with a process starting)."""

    def __init__(self, config: StoreConfig) -> None:
        env = config.env
        self._store = ExecutionStore({**env, "CREATE_TABLE": "false"})
        self._next = 1
        self.histories: dict[UUID, History] = defaultdict(History)

    def refresh(self) -> dict[UUID, History]:
        while page := self._store.read(self._next, 1000):
            for _, event in page:
                self.histories[event.execution_id].events.append(event)
            self._next = page[-1][0] + 1
        return self.histories

    def close(self) -> None:
        self._store.close()


def read_views(config: StoreConfig, ids: list[UUID]) -> dict[UUID, ExecutionView | None]:
    """The persisted read model's view of each execution (what every API process reads)."""
    model = config.read_model()
    try:
        return {i: model.get(i) for i in ids}
    finally:
        close = getattr(model, "close", None)  # the port has no close; shared models do
        if close is not None:
            close()
