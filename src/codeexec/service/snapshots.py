"""Role snapshots: a stateful role starts from its latest snapshot and the log after it.

A snapshot is a retention's events at a log position (codeexec.service.retention), saved
with eventsourcing's snapshot recorder: a table of its own beside the events in SQLite and
PostgreSQL (in memory for POPO), so it works for any persistence module. The latest is one
indexed read. A `Shadow` keeps retentions current by reading the log incrementally, only
the event types they fold (a filtered read of the notification log), and saves a snapshot
each `every` events: start-up costs the snapshot plus at most that many events, whatever
the history. Blocking: call everything here in the store thread."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import cast

from eventsourcing.persistence import AggregateRecorder, IntegrityError, StoredEvent

from codeexec.domain.events import DomainEvent, from_json, to_json
from codeexec.service.retention import Retained, Retention
from codeexec.service.store import TOPIC_PREFIX, ExecutionStore

log = logging.getLogger(__name__)

SNAPSHOT_NAMESPACE = uuid.UUID("5d4a0f52-6f0e-4a55-9c1e-0d7b8c3e2a61")
SNAPSHOT_TOPIC = "codeexec:RoleSnapshot"
PAGE = 2000


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
    """Retentions followed from the log, each from its own snapshot."""

    def __init__(
        self,
        store: ExecutionStore,
        snapshots: SnapshotStore,
        retentions: Sequence[Retention],
        every: int = 10_000,
    ) -> None:
        self.store, self.snapshots, self.every = store, snapshots, every
        self.retentions = {r.name: r for r in retentions}
        self.saved: dict[str, int] = {}  # log position of each retention's latest snapshot
        self.read = 0  # events folded from the log (after the snapshots)

    def __getitem__(self, name: str) -> Retention:
        return self.retentions[name]

    def restore(self) -> None:
        """Load each retention's latest snapshot, then fold the log after it."""
        for name, retention in self.retentions.items():
            latest = self.snapshots.latest(name)
            if latest is not None:
                retention.load(*latest)
            self.saved[name] = retention.position
        self.advance()

    def advance(self, budget: int | None = None, names: Sequence[str] | None = None) -> int:
        """Fold what the log holds after each retention's position (or those `names`), up
        to `budget` events each (None: to the end); save the snapshots that are due.
        Returns events read."""
        end = self.store.max_position()
        total = 0
        chosen = self.retentions if names is None else {n: self.retentions[n] for n in names}
        for retention in chosen.values():
            total += self._follow(retention, end, budget)
            if retention.position - self.saved.get(retention.name, 0) >= self.every:
                self.save(retention)
        self.read += total
        return total

    def save(self, retention: Retention) -> None:
        self.snapshots.save(retention.name, retention.position, retention.events())
        self.saved[retention.name] = retention.position

    def _follow(self, retention: Retention, end: int, budget: int | None) -> int:
        recorder = self.store.process_recorder
        topics = [TOPIC_PREFIX + t for t in sorted(retention.types)]
        read = 0
        while retention.position < end and (budget is None or read < budget):
            notes = recorder.select_notifications(
                retention.position + 1, PAGE, stop=end, topics=topics
            )
            for note in notes:
                event = cast(DomainEvent, self.store.mapper.to_domain_event(note))
                retention.add(note.id, event)
            read += len(notes)
            if len(notes) < PAGE:
                retention.advance_to(end)  # nothing more of interest up to `end`
        return read
