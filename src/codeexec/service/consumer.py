"""Consumer: runs one role's process on a consumer group, idempotently and at least once."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from itertools import groupby
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import OperationalError, RecordConflictError, Tracking

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
from codeexec.ports.store_turn import current_turn
from codeexec.service.consumer_steps import Step, store_calls
from codeexec.service.store import ExecutionStore
from codeexec.service.store_thread import StoreBusy, StoreThread
from codeexec.service.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

TRACKING_STRIDE = 1000
"""Record a position at least this often even when nothing was written, so a restart does
not re-read a long stretch of events that needed nothing."""


class Process(Protocol):
    """A role's decision logic. `handle` is synchronous and deterministic: it reads and
    changes aggregates through the unit of work, which commits with the tracking record.
    It runs in the store thread (with the commit), so it may read the store; state it keeps
    is that thread's, and anything for the event loop goes through `StoreThread.call_soon`.
    A process may set `tracks = False` when it writes nothing and rebuilds from the store
    on start (an in-memory projection): recording its position would only cost writes.
    Such a process is handled on the event loop, where its state is read, and must not
    read the store."""

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
        io: StoreThread,
        *,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.01,
        batch_size: int = 500,
        dead_letters: DeadLetterSink | None = None,
    ) -> None:
        self.bus, self.store, self.process, self.clock = bus, store, process, clock
        self.io = io
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.batch_size = batch_size
        self.dead_letters = dead_letters
        self._watermarks: dict[TopicPartition, int] = {}
        self._tracks: bool = getattr(process, "tracks", True)
        self._on_loop = not self._tracks
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._polling = False
        self.processed = 0

    def _name(self, tp: TopicPartition) -> str:
        return f"{self.process.group}/{tp.topic}/{tp.partition}"

    async def _watermark(self, tp: TopicPartition) -> int:
        if tp not in self._watermarks:
            self._watermarks[tp] = await self.io.run(self.store.tracked, self._name(tp))
        return self._watermarks[tp]

    async def run(self) -> None:
        self._task = asyncio.current_task()
        while not self._stopping.is_set():
            sub = await self.bus.subscribe(self.process.group, self.process.topics)
            try:
                while not self._stopping.is_set():
                    self._polling = True
                    try:
                        batch = await sub.poll(self.batch_size, timeout=0.5)
                    finally:
                        self._polling = False
                    if batch:
                        await self._consume(sub, batch)
            except asyncio.CancelledError:
                raise
            except StoreBusy as busy:
                log.warning("consumer %s waits for the store: %s", self.process.group, busy)
                self._watermarks.clear()
                await asyncio.sleep(self.retry_backoff_s * 10)
            except Exception:
                # Leave the group without committing: the batch is redelivered.
                log.exception("consumer %s failed; rejoining", self.process.group)
                self._watermarks.clear()
                await asyncio.sleep(self.retry_backoff_s * 10)
            finally:
                await sub.close()

    def stop(self) -> None:
        """Take no more messages: a batch in hand is finished (its effects recorded); a
        wait for messages is cut short (nothing was taken, nothing is lost)."""
        self._stopping.set()
        if self._polling and self._task is not None:
            self._task.cancel()

    async def _consume(self, sub: Subscription, batch: list[Message]) -> None:
        offsets: dict[TopicPartition, int] = {}
        parts: list[tuple[TopicPartition, list[Message]]] = []
        for (topic, partition), run in groupby(batch, key=lambda m: (m.topic, m.partition)):
            tp = TopicPartition(topic, partition)
            messages = list(run)
            for message in messages:
                if H_DEAD_LETTER in message.headers and H_REPLAY not in message.headers:
                    await self._retried(message)
            parts.append((tp, messages))
            offsets[tp] = messages[-1].offset + 1
        plan: list[Step] = []
        for tp, messages in parts:
            watermark = await self._watermark(tp)
            fresh = [
                m
                for m in messages
                if H_REPLAY not in m.headers  # a replay is never new work
                and H_DEAD_LETTER not in m.headers
                and m.position is not None
                and m.position > watermark
            ]
            if not fresh:
                continue
            last = fresh[-1].position
            assert last is not None
            wanted = [m for m in fresh if self.process.interested(m.headers.get(H_TYPE, ""))]
            track = self._tracks and (bool(wanted) or last - watermark >= TRACKING_STRIDE)
            if wanted or track:  # else nothing to do or record: no hand-over at all
                plan.append((tp, wanted, last, track))
        for steps in store_calls(plan):
            if self._on_loop:
                failed = self._handle_partitions(steps)
            else:
                # Several partitions per store call (a commit each): few hand-overs.
                failed = await self.io.run(self._handle_partitions, steps)
            for tp, wanted, last in failed:  # before the next step: the partition's order
                for message in wanted:
                    assert message.position is not None
                    await self._one(message, Tracking(self._name(tp), message.position))
                self._watermarks.pop(tp, None)
                await self._skip_to(tp, last)
        await sub.commit(offsets)

    def _handle_partitions(
        self, plan: Sequence[Step]
    ) -> list[tuple[TopicPartition, list[Message], int]]:
        """Handle each partition's wanted messages and commit their effects with its
        position (a redelivered batch changes nothing). Returns the partitions whose batch
        failed, to retry message by message. A busy store raises: nothing more is handled."""
        failed: list[tuple[TopicPartition, list[Message], int]] = []
        for tp, wanted, last, track in plan:
            try:
                uow = self._handle(wanted)
                self._commit(uow, Tracking(self._name(tp), last) if track else None, None)
            except OperationalError:
                raise  # the store, not the messages: nothing was recorded for this partition
            except Exception:
                failed.append((tp, wanted, last))
                continue
            self.processed += len(wanted)
            if track or not self._tracks:
                self._watermarks[tp] = last
        return failed

    async def _apply(
        self, messages: Sequence[Message], tracking: Tracking, resolves: UUID | None = None
    ) -> None:
        """Handle messages and commit what they changed with `tracking` in the store thread
        (a process handled on the loop handles them here and only commits there)."""
        if self._on_loop:
            uow = self._handle(messages)
            await self.io.run(self._commit, uow, tracking, resolves)
        else:
            await self.io.run(self._handle_and_commit, messages, tracking, resolves)

    def _handle_and_commit(
        self, messages: Sequence[Message], tracking: Tracking, resolves: UUID | None
    ) -> None:
        self._commit(self._handle(messages), tracking, resolves)

    def _recover_if_turn_fails(self) -> None:
        """Commits merge into the store thread's turn (group commit): if the turn's commit
        fails, the process's state holds what was not recorded, as after a failed commit
        of its own. The batch comes back (StoreBusy: the consumer rejoins)."""
        turn = current_turn()
        if turn is not None:
            turn.on_abort(self.process.recover)

    def _handle(self, messages: Sequence[Message]) -> UnitOfWork:
        uow = UnitOfWork(self.store, self.clock.now())
        try:
            for message in messages:
                uow.position = message.position
                self.process.handle(decode(message), uow)
        except Exception:
            uow.rollback()
            self.process.recover()
            raise
        return uow

    def _commit(self, uow: UnitOfWork, tracking: Tracking | None, resolves: UUID | None) -> None:
        self._recover_if_turn_fails()
        try:
            if resolves is not None:
                letter = uow.get(DeadLetter, resolves)
                if letter is not None:
                    letter.resolve(Cause(uow.now, letter.correlation_id(), None))
            uow.commit(tracking)
        except Exception:
            uow.rollback()
            self.process.recover()
            raise

    async def _skip_to(self, tp: TopicPartition, position: int) -> None:
        if position <= await self._watermark(tp):
            return
        try:
            await self.io.run(self.store.record, [], (), Tracking(self._name(tp), position))
        except RecordConflictError:
            pass  # someone (a previous member) already tracked further
        self._watermarks[tp] = max(await self._watermark(tp), position)

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
        if await self._tracked(tracking):
            return
        error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._apply([message], tracking, resolves)
                self.processed += 1
                return
            except StoreBusy:
                raise  # the store, not the message: leave the group and come back
            except RecordConflictError as conflict:
                if await self._tracked(tracking):
                    return  # processed by another member meanwhile
                error = conflict
            except Exception as failure:
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
        await self.io.run(self.store.record, [], (), tracking)

    async def _tracked(self, tracking: Tracking) -> bool:
        done = await self.io.run(self.store.tracked, tracking.application_name)
        return bool(done >= tracking.notification_id)
