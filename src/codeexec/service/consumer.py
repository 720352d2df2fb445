"""Consumer: runs one role's process on a consumer group, idempotently and at least once."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from itertools import groupby
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import RecordConflictError, Tracking

from codeexec.domain.aggregate import Cause
from codeexec.domain.dead_letter import DeadLetter
from codeexec.domain.events import DomainEvent, from_json
from codeexec.ports.bus import (
    H_DEAD_LETTER,
    H_DL_ATTEMPT,
    H_DL_GROUP,
    H_REPLAY,
    H_TYPE,
    EventBus,
    Message,
    Subscription,
    TopicPartition,
)
from codeexec.ports.clock import Clock
from codeexec.service.store import ExecutionStore
from codeexec.service.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

TRACKING_STRIDE = 1000
"""Record a position at least this often even when nothing was written, so a restart does
not re-read a long stretch of events that needed nothing."""


class Process(Protocol):
    """A role's decision logic. `handle` is synchronous and deterministic: it reads and
    changes aggregates through the unit of work, which commits with the tracking record.
    A process may set `tracks = False` when it writes nothing and rebuilds from the store
    on start (an in-memory projection): recording its position would only cost writes."""

    group: str
    topics: tuple[str, ...]

    def interested(self, event_type: str) -> bool: ...

    def handle(self, event: DomainEvent, uow: UnitOfWork) -> None: ...

    def recover(self) -> None:
        """Rebuild in-memory state after a failed commit (state may hold unrecorded changes)."""


DeadLetterSink = Callable[[str, Message, BaseException, int], Awaitable[None]]


_DECODED: OrderedDict[bytes, DomainEvent] = OrderedDict()
_DECODED_MAX = 4096


def decode(message: Message) -> DomainEvent:
    """Validate a received event. Several roles in one process receive the same bytes;
    they share one validated (immutable) event instead of validating it once per role."""
    event = _DECODED.get(message.value)
    if event is None:
        event = from_json(message.value)
        _DECODED[message.value] = event
        if len(_DECODED) > _DECODED_MAX:
            _DECODED.popitem(last=False)
    return event


class Consumer:
    def __init__(
        self,
        bus: EventBus,
        store: ExecutionStore,
        process: Process,
        clock: Clock,
        *,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.01,
        batch_size: int = 500,
        dead_letters: DeadLetterSink | None = None,
    ) -> None:
        self.bus, self.store, self.process, self.clock = bus, store, process, clock
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.batch_size = batch_size
        self.dead_letters = dead_letters
        self._watermarks: dict[TopicPartition, int] = {}
        self._tracks: bool = getattr(process, "tracks", True)
        self._stopping = asyncio.Event()
        self.processed = 0

    def _name(self, tp: TopicPartition) -> str:
        return f"{self.process.group}/{tp.topic}/{tp.partition}"

    def _watermark(self, tp: TopicPartition) -> int:
        if tp not in self._watermarks:
            self._watermarks[tp] = self.store.tracked(self._name(tp))
        return self._watermarks[tp]

    async def run(self) -> None:
        while not self._stopping.is_set():
            sub = await self.bus.subscribe(self.process.group, self.process.topics)
            try:
                while not self._stopping.is_set():
                    batch = await sub.poll(self.batch_size, timeout=0.5)
                    if batch:
                        await self._consume(sub, batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Leave the group without committing: the batch is redelivered.
                log.exception("consumer %s failed; rejoining", self.process.group)
                self._watermarks.clear()
                await asyncio.sleep(self.retry_backoff_s * 10)
            finally:
                await sub.close()

    def stop(self) -> None:
        self._stopping.set()

    async def _consume(self, sub: Subscription, batch: list[Message]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for (topic, partition), run in groupby(batch, key=lambda m: (m.topic, m.partition)):
            tp = TopicPartition(topic, partition)
            messages = list(run)
            await self._consume_partition(tp, messages)
            offsets[tp] = messages[-1].offset + 1
            # Handling is synchronous; between partitions, let requests and other roles in.
            await asyncio.sleep(0)
        await sub.commit(offsets)

    async def _consume_partition(self, tp: TopicPartition, messages: Sequence[Message]) -> None:
        fresh: list[Message] = []
        watermark = self._watermark(tp)
        for message in messages:
            headers = message.headers
            if H_REPLAY in headers:
                continue  # a replay is never new work
            if H_DEAD_LETTER in headers:
                await self._retried(message)
                continue
            position = message.position
            if position is not None and position > watermark:
                fresh.append(message)
        if not fresh:
            return
        last = fresh[-1].position
        assert last is not None
        wanted = [m for m in fresh if self.process.interested(m.headers.get(H_TYPE, ""))]
        uow = UnitOfWork(self.store, self.clock.now())
        track = self._tracks and (bool(wanted) or last - watermark >= TRACKING_STRIDE)
        try:
            for message in wanted:
                uow.position = message.position
                self.process.handle(decode(message), uow)
            # Effects and position in one write: a redelivered batch changes nothing.
            uow.commit(Tracking(self._name(tp), last) if track else None)
        except Exception:
            uow.rollback()
            self.process.recover()
            for message in wanted:
                assert message.position is not None
                await self._one(message, Tracking(self._name(tp), message.position))
            self._watermarks.pop(tp, None)
            await self._skip_to(tp, last)
            return
        self.processed += len(wanted)
        if track or not self._tracks:
            self._watermarks[tp] = last

    async def _skip_to(self, tp: TopicPartition, position: int) -> None:
        if position <= self._watermark(tp):
            return
        try:
            self.store.record([], (), Tracking(self._name(tp), position))
        except RecordConflictError:
            pass  # someone (a previous member) already tracked further
        self._watermarks[tp] = max(self._watermark(tp), position)

    async def _retried(self, message: Message) -> None:
        """A dead letter retried to its original topic: only the group that failed on it
        handles it, once per retry attempt, and marks it resolved in the same write."""
        if message.headers.get(H_DL_GROUP) != self.process.group:
            return
        letter_id = UUID(message.headers[H_DEAD_LETTER])
        attempt = int(message.headers.get(H_DL_ATTEMPT, "1"))
        name = f"{self.process.group}/dead-letter/{letter_id}"
        await self._one(message, Tracking(name, attempt), resolves=letter_id)

    async def _one(
        self, message: Message, tracking: Tracking, resolves: UUID | None = None
    ) -> None:
        """Handle one message alone, retrying with backoff; park it if it keeps failing."""
        if self.store.tracked(tracking.application_name) >= tracking.notification_id:
            return
        error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            uow = UnitOfWork(self.store, self.clock.now())
            uow.position = message.position
            try:
                self.process.handle(decode(message), uow)
                if resolves is not None:
                    letter = uow.get(DeadLetter, resolves)
                    if letter is not None:
                        letter.resolve(Cause(uow.now, letter.correlation_id(), None))
                uow.commit(tracking)
                self.processed += 1
                return
            except RecordConflictError as conflict:
                uow.rollback()
                self.process.recover()
                if self.store.tracked(tracking.application_name) >= tracking.notification_id:
                    return  # processed by another member meanwhile
                error = conflict
            except Exception as failure:
                uow.rollback()
                self.process.recover()
                error = failure
            await asyncio.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
        assert error is not None
        log.error(
            "%s parks %s after %d attempts: %s",
            self.process.group,
            message.headers.get(H_TYPE),
            self.max_attempts,
            error,
        )
        if self.dead_letters is not None:
            await self.dead_letters(self.process.group, message, error, self.max_attempts)
        self.store.record([], (), tracking)
