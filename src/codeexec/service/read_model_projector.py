"""ReadModelProjector: the projections role for a persisted read model.

Consumes `execution_events` in the `projections` consumer group and folds each partition's
batch into the read model together with the tracking position `projections/<topic>/<n>`,
in one transaction of the read model's own database (not the event store's): a redelivered
batch changes nothing, a crash never applies one twice, and a restart resumes from the
committed offsets without folding history. Several projectors may share the group (each
partition has one at a time; a rebalance that overlaps is still applied once). Read-model
I/O is blocking: it goes through `blocking` (the store thread's `run`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from itertools import groupby
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.persistence import Tracking

from codeexec.domain.events import TERMINAL_EVENT_TYPES, DomainEvent
from codeexec.domain.routing import EXECUTION_EVENTS
from codeexec.ports.bus import H_DEAD_LETTER, H_REPLAY, EventBus, Message, TopicPartition
from codeexec.ports.read_model import ExecutionReadModel, shown
from codeexec.service.consumer import TRACKING_STRIDE, decode
from codeexec.service.projections import ExecutionFeed
from codeexec.service.store import ExecutionStore

log = logging.getLogger(__name__)
T = TypeVar("T")


BACKFILL = "projections/store"
"""The tracking name under which `backfill` records how far it read the store."""


def backfill(store: ExecutionStore, read_model: ExecutionReadModel, batch: int = 1000) -> int:
    """Fold into the read model what the store holds beyond the backfill's tracked position:
    a new persisted read model on an existing store (an upgrade) starts complete, instead
    of showing only what the bus still delivers. Blocking (run it in the store thread);
    resumable (each batch carries its tracking); events the projector also delivers are
    applied once, by version. Returns how many events it read."""
    start, read = read_model.tracked(BACKFILL) + 1, 0
    while page := store.read(start, batch):
        read_model.apply_batch(page, Tracking(BACKFILL, page[-1][0]))
        read += len(page)
        start = page[-1][0] + 1
    return read


class Blocking(Protocol):
    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


class ReadModelProjector:
    group = "projections"

    def __init__(
        self,
        bus: EventBus,
        read_model: ExecutionReadModel,
        *,
        feed: ExecutionFeed | None = None,
        blocking: Blocking = asyncio.to_thread,
        topics: Sequence[str] = (EXECUTION_EVENTS,),
        batch_size: int = 500,
        retry_s: float = 0.5,
    ) -> None:
        self.bus, self.read_model, self.feed = bus, read_model, feed
        self.blocking = blocking
        self.topics, self.batch_size, self.retry_s = tuple(topics), batch_size, retry_s
        self._stopping = asyncio.Event()
        self.applied = 0  # events folded in by this projector
        self._written: dict[str, int] = {}  # the last position written, per tracking name

    def tracking_name(self, tp: TopicPartition) -> str:
        return f"{self.group}/{tp.topic}/{tp.partition}"

    async def run(self) -> None:
        while not self._stopping.is_set():
            sub = await self.bus.subscribe(self.group, self.topics)
            try:
                while not self._stopping.is_set():
                    batch = await sub.poll(self.batch_size, timeout=0.5)
                    offsets: dict[TopicPartition, int] = {}
                    parts: list[tuple[Sequence[tuple[int, DomainEvent]], Tracking]] = []
                    for (topic, partition), run in groupby(
                        batch, key=lambda m: (m.topic, m.partition)
                    ):
                        tp = TopicPartition(topic, partition)
                        messages = list(run)
                        part = self._decoded(messages)
                        name = self.tracking_name(tp)
                        if part is not None and self._worth_a_write(name, *part):
                            parts.append((part[0], Tracking(name, part[1])))
                        offsets[tp] = messages[-1].offset + 1
                    if parts:  # the whole poll in one write, whatever partitions it spans
                        await self._project(parts)
                    if offsets:
                        await sub.commit(offsets)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Leave the group without committing: the batch comes again (applied once).
                log.exception("projector failed; rejoining %s", self.group)
                await asyncio.sleep(self.retry_s)
            finally:
                await sub.close()

    def _decoded(
        self, messages: Sequence[Message]
    ) -> tuple[list[tuple[int, DomainEvent]], int] | None:
        """A partition's events with their positions, and its last position (None: no
        message of it is the relay's)."""
        events: list[tuple[int, DomainEvent]] = []
        last = 0
        for message in messages:
            position = message.position
            if position is None or H_REPLAY in message.headers:
                continue  # a replay is never new; an unpositioned message is not the relay's
            if H_DEAD_LETTER in message.headers:
                continue  # the projection parks nothing, so no retry is addressed to it
            last = max(last, position)
            try:
                events.append((position, decode(message)))
            except Exception as error:
                # Unreadable bytes stay unreadable: retrying or parking would not help. The
                # store still has the event; the views of its execution miss it.
                log.error("projector skips unreadable event at %s: %s", position, error)
        return (events, last) if last else None

    def _worth_a_write(
        self, name: str, events: Sequence[tuple[int, DomainEvent]], last: int
    ) -> bool:
        """A partition's batch of saga events only (a run's last two, for one) changes no
        view: it costs no transaction of its own. Its position is written with the next
        batch that does, or once it is TRACKING_STRIDE past the last one written; until
        then a restart reads those events again, and they change nothing again."""
        if any(shown(event) for _, event in events):
            return True
        return last - self._written.get(name, 0) >= TRACKING_STRIDE

    async def _project(
        self, parts: list[tuple[Sequence[tuple[int, DomainEvent]], Tracking]]
    ) -> None:
        changed: list[UUID] = await self.blocking(self.read_model.apply_partitions, parts)
        for _, tracking in parts:
            self._written[tracking.application_name] = tracking.notification_id
        self.applied += sum(len(events) for events, _ in parts)
        if self.feed is not None:
            ended = {
                event.execution_id
                for events, _ in parts
                for _, event in events
                if isinstance(event, TERMINAL_EVENT_TYPES)
            }
            for execution_id in changed:
                self.feed.notify(execution_id, execution_id in ended)

    def stop(self) -> None:
        self._stopping.set()
