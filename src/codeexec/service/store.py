"""ExecutionStore: the eventsourcing application that records every event with tracking."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, ClassVar, Protocol, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    ProcessRecorder,
    StoredEvent,
    Tracking,
)

from codeexec.domain.aggregate import Aggregate, project
from codeexec.domain.events import DomainEvent, from_json, to_json
from codeexec.ports.store_turn import current_turn

TOPIC_PREFIX = "codeexec:"
"""Stored events are named by their contract type, never by a Python path, so moving
code never breaks stored events."""

A = TypeVar("A", bound=Aggregate)


class ContractMapper(Mapper[UUID]):
    """Stores the contract document (with its schema version) as JSON; upcasts on load."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event = cast(DomainEvent, domain_event)
        state = to_json(event)
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return StoredEvent(
            originator_id=event.aggregate_id,
            originator_version=event.aggregate_version,
            topic=TOPIC_PREFIX + event.type_name,
            state=state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        state = stored_event.state
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        return from_json(state)


OWN_WRITES = 1024
"""Aggregates a process keeps of its own last writes on a shared store (about the runs a
worker has going at once, with room to spare)."""


class StoreWatch(Protocol):
    def stop(self) -> None: ...


class ExecutionStore(Application[UUID]):
    """One log for all roles. Persistence comes from eventsourcing's environment variables
    (PERSISTENCE_MODULE, SQLITE_DBNAME, ...): POPO by default, SQLite embedded, or an
    adapter's module such as Mongo."""

    name = "codeexec"
    env: ClassVar[dict[str, str]] = {"PERSISTENCE_MODULE": "eventsourcing.popo"}

    def __init__(self, env: dict[str, str] | None = None, cache_size: int = 0) -> None:
        super().__init__(env)
        # The cache is only safe when this process is the store's one writer (embedded).
        self._cache: OrderedDict[UUID, Aggregate] = OrderedDict()
        self._cache_size = cache_size
        # On a shared store: the aggregates this process wrote last, for a writer that
        # expects to be the next to write (`load(..., own_write=True)`); a stale one only
        # costs a conflict, and the write is retried on a fresh load.
        self._own: OrderedDict[UUID, Aggregate] = OrderedDict()
        self.listeners: list[Callable[[Sequence[DomainEvent]], None]] = []
        # Called with the positions and stored forms of each write (the relay's fast path).
        self.record_listeners: list[Callable[[list[int], list[StoredEvent]], None]] = []
        # Called with the positions and events of each write (the snapshots' shadow).
        self.position_listeners: list[Callable[[list[int], Sequence[DomainEvent]], None]] = []
        self.recorded_bytes = 0  # stored events' bytes written by this process

    def construct_mapper(self) -> Mapper[UUID]:
        return ContractMapper(
            transcoder=JSONTranscoder(),
            compressor=self.factory.compressor(),
            cipher=self.factory.cipher(),
        )

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def watch(self, on_write: Callable[[], None]) -> StoreWatch | None:
        """Call `on_write` (from another thread) soon after any process commits events, if
        the store can tell (PostgreSQL's LISTEN/NOTIFY); None if readers must poll."""
        watch = getattr(self.process_recorder, "watch", None)
        return None if watch is None else cast(StoreWatch, watch(on_write))

    @property
    def process_recorder(self) -> ProcessRecorder:
        return cast(ProcessRecorder, self.recorder)

    def load(self, cls: type[A], aggregate_id: UUID, *, own_write: bool = False) -> A | None:
        """The aggregate as recorded. `own_write`: the caller will change and record it at
        once and retries on a conflict (the worker recording its run's output and result,
        which only it writes while the run goes on); then, on a shared store, the copy this
        process last wrote serves, without a read. Otherwise a shared store is read."""
        cached = self._cache.get(aggregate_id)
        if cached is None and own_write:
            cached = self._own.get(aggregate_id)
        if cached is not None:
            if aggregate_id in self._cache:
                self._cache.move_to_end(aggregate_id)
            return cached if isinstance(cached, cls) else None
        try:
            aggregate = self.repository.get(
                aggregate_id, projector_func=partial(project, cls), deepcopy_from_cache=False
            )
        except AggregateNotFoundError:
            return None
        if aggregate is None:
            return None
        self._remember(aggregate)
        return cast(A, aggregate)

    def _remember(self, aggregate: Aggregate) -> None:
        if self._cache_size:
            self._cache[aggregate.id] = aggregate
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _remember_own(self, aggregate: Aggregate) -> None:
        if not self._cache_size:
            self._own[aggregate.id] = aggregate
            self._own.move_to_end(aggregate.id)
            if len(self._own) > OWN_WRITES:
                self._own.popitem(last=False)

    def forget(self, aggregate_ids: Sequence[UUID]) -> None:
        for aggregate_id in aggregate_ids:
            self._cache.pop(aggregate_id, None)
            self._own.pop(aggregate_id, None)

    def _unrecord(self, aggregate_ids: Sequence[UUID], size: int) -> None:
        self.forget(aggregate_ids)
        self.recorded_bytes -= size

    def record(
        self,
        events: Sequence[DomainEvent],
        aggregates: Sequence[Aggregate] = (),
        tracking: Tracking | None = None,
    ) -> list[int]:
        """Atomically record events (and the consumer position that caused them). In a
        store turn the write is final when the turn commits: if it does not, the cached
        aggregates are dropped (what the listeners were told was posted, and is dropped)."""
        stored = [self.mapper.to_stored_event(e) for e in events]
        if not stored and tracking is not None:
            self.process_recorder.insert_tracking(tracking)
            return []
        ids = list(self.process_recorder.insert_events(stored, tracking=tracking) or [])
        size = sum(len(s.state) for s in stored)
        self.recorded_bytes += size
        for aggregate in aggregates:
            self._remember(aggregate)
            self._remember_own(aggregate)
        turn = current_turn()
        if turn is not None and turn.unsaved:  # else the insert committed the turn so far
            turn.on_abort(partial(self._unrecord, [a.id for a in aggregates], size))
        for record_listener in self.record_listeners:
            record_listener(ids, stored)
        for position_listener in self.position_listeners:
            position_listener(ids, events)
        for listener in self.listeners:
            listener(events)
        return ids

    def events_of(
        self, aggregate_id: UUID, after_version: int = 0, limit: int | None = None
    ) -> list[DomainEvent]:
        stored = self.recorder.select_events(aggregate_id, gt=after_version or None, limit=limit)
        return [cast(DomainEvent, self.mapper.to_domain_event(s)) for s in stored]

    def read(self, start: int = 1, limit: int = 1000) -> list[tuple[int, DomainEvent]]:
        """Events by position in the application sequence, from `start` inclusive."""
        return [(position, event) for position, event, _ in self.read_documents(start, limit)]

    def read_documents(self, start: int, limit: int) -> list[tuple[int, DomainEvent, bytes]]:
        """Like `read`, with each event's JSON document (the stored bytes when stored plain)."""
        notes = self.process_recorder.select_notifications(start, limit)
        plain = not (self.mapper.compressor or self.mapper.cipher)
        out = []
        for note in notes:
            event = cast(DomainEvent, self.mapper.to_domain_event(note))
            out.append((note.id, event, note.state if plain else to_json(event)))
        return out

    def read_all(self, start: int = 1, batch: int = 1000) -> Iterator[tuple[int, DomainEvent]]:
        while page := self.read(start, batch):
            yield from page
            start = page[-1][0] + 1

    def max_position(self) -> int:
        return self.process_recorder.max_notification_id() or 0

    def tracked(self, name: str) -> int:
        return self.process_recorder.max_tracking_id(name) or 0
