"""Dead letters: parking failed events, retrying them with backoff, and admin actions."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from contextlib import suppress
from datetime import datetime
from typing import Literal
from uuid import UUID

from codeexec.domain.aggregate import Cause
from codeexec.domain.dead_letter import (
    DeadLetter,
    DeadLetterConfig,
    DeadLetterState,
    dead_letter_id,
)
from codeexec.domain.operations_events import DeadLetterParked
from codeexec.domain.routing import DEAD_LETTERS
from codeexec.ports.bus import (
    H_DEAD_LETTER,
    H_DL_ATTEMPT,
    H_DL_GROUP,
    H_TYPE,
    EventBus,
    Message,
    TopicPartition,
)
from codeexec.ports.clock import Clock
from codeexec.service.store import ExecutionStore
from codeexec.service.store_thread import StoreThread
from codeexec.service.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

BacklogLevel = Literal["ok", "warning", "critical"]

NIL = UUID(int=0)
_META = ("dl-group", "dl-topic", "dl-partition", "dl-offset", "dl-error", "dl-attempts")


async def park(
    bus: EventBus, group: str, message: Message, error: BaseException, attempts: int
) -> None:
    """What a consumer does with a message it kept failing on: put it on the DLQ topic."""
    headers = dict(message.headers)
    headers.update(
        {
            "dl-group": group,
            "dl-topic": message.topic,
            "dl-partition": str(message.partition),
            "dl-offset": str(message.offset),
            "dl-error": f"{type(error).__name__}: {error}"[:2000],
            "dl-attempts": str(attempts),
        }
    )
    await bus.publish([Message(DEAD_LETTERS, message.key, message.value, headers)])


def _origin(value: bytes) -> tuple[UUID, str, UUID]:
    """Execution, user and correlation of the failed event, when it can be read at all."""
    try:
        doc = json.loads(value)
        return UUID(doc["execution_id"]), str(doc["user_id"]), UUID(doc["correlation_id"])
    except (ValueError, KeyError, TypeError):
        return NIL, "", NIL


class DeadLetterManager:
    """Consumes the DLQ topic into event-sourced dead letters, retries them on schedule,
    and carries out admins' decisions. Every state change is an event in the store.
    Its synchronous methods touch the store: call them in the store thread."""

    group = "dead-letter-manager"

    def __init__(
        self,
        store: ExecutionStore,
        bus: EventBus,
        clock: Clock,
        io: StoreThread,
        config: DeadLetterConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store, self.bus, self.clock, self.io = store, bus, clock, io
        self.config = config or DeadLetterConfig()
        self.rng = rng or random.Random()
        self.ids: list[UUID] = []  # every dead letter, oldest first
        self._known: set[UUID] = set()
        # Letters not yet seen closed. Closing is final, so the retry loop, health and
        # metrics look only at these instead of loading every letter ever parked.
        self._maybe_open: dict[UUID, None] = {}
        self._stopping = asyncio.Event()

    def fold(self, event: object) -> None:
        if isinstance(event, DeadLetterParked) and event.aggregate_id not in self._known:
            self._known.add(event.aggregate_id)
            self.ids.append(event.aggregate_id)
            self._maybe_open[event.aggregate_id] = None

    # -- the DLQ topic ------------------------------------------------------------------------

    async def run(self) -> None:
        await self._republish_in_flight()
        while not self._stopping.is_set():
            sub = await self.bus.subscribe(self.group, (DEAD_LETTERS,))
            try:
                while not self._stopping.is_set():
                    batch = await sub.poll(100, timeout=0.2)
                    if batch:
                        await self.io.run(self._receive_all, batch)
                        last = batch[-1]
                        tp = TopicPartition(last.topic, last.partition)
                        await sub.commit({tp: last.offset + 1})
                    await self.retry_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Leave without committing: the parked messages come back after a pause.
                log.exception("dead-letter manager failed; rejoining")
                await asyncio.sleep(0.5)
            finally:
                await sub.close()

    def stop(self) -> None:
        self._stopping.set()

    def _receive_all(self, batch: list[Message]) -> None:
        for message in batch:
            self.receive(message)

    def receive(self, message: Message) -> None:
        """Record a parked message: a new dead letter, or a retry of one that failed again."""
        headers = message.headers
        if "dl-group" not in headers or "dl-topic" not in headers:
            log.warning("ignoring a message on the DLQ topic that no consumer parked")
            return
        group, topic = headers["dl-group"], headers["dl-topic"]
        uow = UnitOfWork(self.store, self.clock.now())
        if H_DEAD_LETTER in headers:
            letter_id = UUID(headers[H_DEAD_LETTER])
        else:
            where = headers.get("position") or headers.get("dl-offset", "0")
            letter_id = dead_letter_id(
                group, topic, int(headers.get("dl-partition", "0")), int(where)
            )
        letter = uow.get(DeadLetter, letter_id)
        execution_id, user_id, correlation = _origin(message.value)
        cause = Cause(uow.now, correlation, None)
        event_type = headers.get(H_TYPE, "unknown")
        policy = self.config.policy_for(event_type)
        if letter is None:
            original = {k: v for k, v in headers.items() if k not in _META}
            letter = DeadLetter.park(
                letter_id,
                execution_id,
                user_id,
                cause,
                group=group,
                original_topic=topic,
                partition=int(headers.get("dl-partition", "-1")),
                offset=int(headers.get("dl-offset", "-1")),
                key=message.key,
                payload=message.value,
                headers=original,
                event_type=event_type,
                category=event_type,
                error=headers.get("dl-error", ""),
                attempts=int(headers.get("dl-attempts", "1")),
            )
            uow.add(letter)
            letter.schedule_retry(cause, policy, self.rng)
        elif (
            letter.state is DeadLetterState.RETRYING
            and int(headers.get(H_DL_ATTEMPT, "0")) == letter.attempt
        ):
            exhausted = letter.attempt >= policy.max_retries
            letter.retry_failed(cause, headers.get("dl-error", ""), exhausted)
            if not exhausted:
                letter.schedule_retry(cause, policy, self.rng)
        else:
            return  # the same parking delivered twice
        uow.commit()
        self.fold(letter.parked)

    # -- retries ------------------------------------------------------------------------------

    async def retry_due(self) -> int:
        due = await self.io.run(self._due, self.clock.now())
        for letter_id in due:
            try:
                await self.retry(letter_id, by="auto")
            except Exception:
                # One letter that cannot be sent (its topic is gone...) must not stop the rest.
                log.exception("automatic retry of dead letter %s failed", letter_id)
        return len(due)

    def _due(self, now: datetime) -> list[UUID]:
        return [
            letter.id
            for letter in self.open_letters()
            if letter.state is DeadLetterState.PARKED
            and letter.due_at is not None
            and letter.due_at <= now
        ]

    async def retry(self, letter_id: UUID, by: str) -> DeadLetter:
        """Republish to the original topic, addressed to the group that failed on it."""
        letter, message = await self.io.ask(self._record_retry, letter_id, by)
        await self.bus.publish([message])
        return letter

    def _record_retry(self, letter_id: UUID, by: str) -> tuple[DeadLetter, Message]:
        uow = UnitOfWork(self.store, self.clock.now())
        letter = self._get(uow, letter_id)
        letter.retry(Cause(uow.now, letter.correlation_id(), None), by)
        uow.commit()
        return letter, self._message(letter)

    def _message(self, letter: DeadLetter) -> Message:
        parked = letter.parked
        assert parked is not None
        headers = dict(parked.headers)
        headers.update(
            {
                H_DEAD_LETTER: str(letter.id),
                H_DL_GROUP: parked.group,
                H_DL_ATTEMPT: str(letter.attempt),
            }
        )
        return Message(parked.original_topic, parked.key, parked.payload, headers)

    async def _republish_in_flight(self) -> None:
        """A retry recorded but maybe never published (a crash between the two): send it
        again; the consumer handles each attempt at most once."""
        messages = await self.io.run(self._in_flight)
        for message in messages:
            with suppress(Exception):
                await self.bus.publish([message])

    def _in_flight(self) -> list[Message]:
        return [
            self._message(letter)
            for letter in self.open_letters()
            if letter.state is DeadLetterState.RETRYING
        ]

    # -- admin --------------------------------------------------------------------------------

    def _get(self, uow: UnitOfWork, letter_id: UUID) -> DeadLetter:
        letter = uow.get(DeadLetter, letter_id)
        if letter is None or letter.parked is None:
            raise LookupError(f"dead letter {letter_id} not found")
        return letter

    def get(self, letter_id: UUID) -> DeadLetter:
        return self._get(UnitOfWork(self.store, self.clock.now()), letter_id)

    def letters(self) -> list[DeadLetter]:
        found = (self.store.load(DeadLetter, i) for i in self.ids)
        return [letter for letter in found if letter is not None]

    def open_letters(self) -> list[DeadLetter]:
        found = [self.store.load(DeadLetter, i) for i in list(self._maybe_open)]
        for letter in found:
            if letter is not None and not letter.is_open:
                del self._maybe_open[letter.id]
        return [letter for letter in found if letter is not None and letter.is_open]

    def discard(self, letter_id: UUID, by: str, reason: str = "") -> DeadLetter:
        uow = UnitOfWork(self.store, self.clock.now())
        letter = self._get(uow, letter_id)
        letter.discard(Cause(uow.now, letter.correlation_id(), None), by, reason)
        uow.commit()
        return letter

    def archive(self, letter_id: UUID, by: str) -> DeadLetter:
        uow = UnitOfWork(self.store, self.clock.now())
        letter = self._get(uow, letter_id)
        letter.archive(Cause(uow.now, letter.correlation_id(), None), by)
        uow.commit()
        return letter

    def backlog(self) -> tuple[int, BacklogLevel]:
        """Open dead letters and the level they reach: ok, warning or critical."""
        count = len(self.open_letters())
        if count >= self.config.critical_backlog:
            return count, "critical"
        if count >= self.config.warning_backlog:
            return count, "warning"
        return count, "ok"

    def oldest_open(self) -> datetime | None:
        opened = [letter.parked.time for letter in self.open_letters() if letter.parked is not None]
        return min(opened, default=None)
