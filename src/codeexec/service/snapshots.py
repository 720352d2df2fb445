"""Role snapshots: a stateful role starts from its latest snapshot and the log after it.

A snapshot is a retention's events at a log position (codeexec.service.retention), saved
with eventsourcing's snapshot recorder: a table of its own beside the events in SQLite and
PostgreSQL (in memory for POPO), so it works for any persistence module. The latest is one
indexed read. A `Shadow` keeps retentions current by reading the log incrementally, only
the event types they fold, and saves a snapshot each `every` events: start-up costs the
snapshot plus at most that many events, whatever the history. All retentions share one
filtered read of the notification log, and an event is decoded once, only if one folds it.
Where this process is the store's one writer, the shadow is fed the events as they are
recorded (they are in memory already) and reads the log only at start-up or after a gap.
Blocking: call everything here in the store thread."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Sequence
from typing import cast

from eventsourcing.persistence import AggregateRecorder, IntegrityError, StoredEvent

from codeexec.domain.events import DomainEvent, from_json, to_json
from codeexec.ports.store_turn import current_turn
from codeexec.service.retention import Retained, Retention
from codeexec.service.store import TOPIC_PREFIX, ExecutionStore

log = logging.getLogger(__name__)

SNAPSHOT_NAMESPACE = uuid.UUID("5d4a0f52-6f0e-4a55-9c1e-0d7b8c3e2a61")
SNAPSHOT_TOPIC = "codeexec:RoleSnapshot"
PAGE = 2000


@functools.cache
def _type_name(cls: type[DomainEvent]) -> str:
    """`event.type_name`, once per class (the property looks into the model's fields)."""
    return str(cls.model_fields["type"].default)


def snapshot_id(name: str) -> uuid.UUID:
    return uuid.uuid5(SNAPSHOT_NAMESPACE, name)


class SnapshotStore:
    def __init__(self, store: ExecutionStore) -> None:
        self._recorder: AggregateRecorder = store.factory.aggregate_recorder("snapshots")

    def latest(self, name: str) -> tuple[int, list[Retained]] | None:
        rows = self._recorder.select_events(snapshot_id(name), desc=True, limit=1)
        if not rows:
            return None
        document = json.loads(rows[0].state)
        events = [(int(at), from_json(doc)) for at, doc in document["events"]]
        return int(document["position"]), events

    def save(self, name: str, position: int, events: Sequence[Retained]) -> bool:
        """False if a snapshot at this position exists (another process saved it)."""
        # Each event as its own JSON document: it loads on pydantic's fast path.
        kept = [[at, to_json(e).decode()] for at, e in events]
        document = {"position": position, "events": kept}
        state = json.dumps(document, separators=(",", ":")).encode()
        stored = StoredEvent(snapshot_id(name), position, SNAPSHOT_TOPIC, state)
        try:
            self._recorder.insert_events([stored])
        except IntegrityError:
            return False
        return True


class Shadow:
    """Retentions followed from the log, each from its own snapshot. `listen`: this process
    is the store's one writer (its every write goes through `store.record`), so the
    retentions are fed from the store's listener instead of reading the log back."""

    def __init__(
        self,
        store: ExecutionStore,
        snapshots: SnapshotStore,
        retentions: Sequence[Retention],
        every: int = 10_000,
        listen: bool = False,
    ) -> None:
        self.store, self.snapshots, self.every = store, snapshots, every
        self.retentions = {r.name: r for r in retentions}
        self.saved: dict[str, int] = {}  # log position of each retention's latest snapshot
        self.read = 0  # events folded from the log (after the snapshots)
        self.fed = 0  # events folded from the store's listener
        self.listening = listen
        self._current: set[str] = set()  # fed without a gap since the last read of the log
        self._stale = False  # fed events that a failed turn did not record
        if listen:
            store.position_listeners.append(self._recorded)

    def __getitem__(self, name: str) -> Retention:
        return self.retentions[name]

    def restore(self) -> None:
        """Load each retention's latest snapshot, then fold the log after it."""
        self._current.clear()
        self._stale = False
        for name, retention in self.retentions.items():
            retention.clear()
            latest = self.snapshots.latest(name)
            if latest is not None:
                retention.load(*latest)
            self.saved[name] = retention.position
        self.advance()

    def advance(self, budget: int | None = None, names: Sequence[str] | None = None) -> int:
        """Fold what the log holds after each retention's position (or those `names`), up
        to `budget` events in all (None: to the end); save the snapshots that are due.
        Retentions the listener keeps current are not read for. Returns events read."""
        chosen = list(self.retentions.values() if names is None else map(self.__getitem__, names))
        if self._stale:
            self.restore()
        behind = [r for r in chosen if r.name not in self._current]
        end = self.store.max_position() if behind else 0
        total = self._scan(behind, end, budget) if behind else 0
        if self.listening:
            self._current.update(r.name for r in behind if r.position >= end)
        for retention in chosen:
            if retention.position - self.saved.get(retention.name, 0) >= self.every:
                self.save(retention)
        self.read += total
        return total

    def save(self, retention: Retention) -> None:
        self.snapshots.save(retention.name, retention.position, retention.events())
        self.saved[retention.name] = retention.position

    def _scan(self, behind: list[Retention], end: int, budget: int | None) -> int:
        """One read of the log for all `behind`: only the topics they fold (filtered by the
        store), each event decoded once and only if a retention still needs it."""
        recorder = self.store.process_recorder
        types = {t for r in behind for t in r.types}
        wanted = {TOPIC_PREFIX + t: [r for r in behind if t in r.types] for t in types}
        topics = sorted(wanted)
        at = min(r.position for r in behind)
        read = 0
        while at < end and (budget is None or read < budget):
            notes = recorder.select_notifications(at + 1, PAGE, stop=end, topics=topics)
            for note in notes:
                folds = [r for r in wanted.get(note.topic, ()) if r.position < note.id]
                if folds:
                    event = cast(DomainEvent, self.store.mapper.to_domain_event(note))
                    for retention in folds:
                        retention.add(note.id, event)
            read += len(notes)
            # Every topic of interest was read up to here: nothing else to fold before it.
            at = end if len(notes) < PAGE else notes[-1].id
            for retention in behind:
                retention.advance_to(at)
        return read

    def _recorded(self, positions: list[int], events: Sequence[DomainEvent]) -> None:
        """The store recorded `events` at `positions` (in its thread, in this order)."""
        if not positions:
            return
        turn = current_turn()
        if turn is not None:
            # Not recorded after all: what was folded is wrong; start again from the log.
            turn.on_abort(self._forget)
        first = positions[0]
        typed = [(p, e, _type_name(type(e))) for p, e in zip(positions, events, strict=True)]
        for name in list(self._current):
            retention = self.retentions[name]
            if retention.position != first - 1:
                self._current.discard(name)  # a gap (or a repeat): read the log for it
                continue
            # As the log's filtered read: only the types it folds reach it.
            for position, event, type_name in typed:
                if type_name in retention.types:
                    retention.add(position, event)
            retention.advance_to(positions[-1])
        self.fed += len(positions)

    def _forget(self) -> None:
        """A turn that recorded events failed to commit (their positions will be given
        again): what was fed is wrong; the next step starts again from the snapshots."""
        self._current.clear()
        self._stale = True
