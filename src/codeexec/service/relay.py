"""Relay: publishes recorded events from the store's log to their topics (the outbox)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from contextlib import suppress
from typing import cast

from eventsourcing.persistence import RecordConflictError, StoredEvent, Tracking

from codeexec.domain.events import DomainEvent, to_json
from codeexec.domain.routing import topics_for
from codeexec.ports.bus import H_CORRELATION, H_POSITION, H_SCHEMA, H_TYPE, EventBus, Message
from codeexec.service.store import TOPIC_PREFIX, ExecutionStore
from codeexec.service.store_thread import StoreThread

log = logging.getLogger(__name__)

RELAY = "relay"
TRACK_EVERY = 1000
TRACK_INTERVAL_S = 0.2


_MARK = b'"execution_id":"'


def execution_id_of(document: bytes) -> str:
    """The partition key, read without parsing the whole document (the hot path)."""
    start = document.find(_MARK)
    if start < 0:
        return str(json.loads(document)["execution_id"])
    start += len(_MARK)
    return document[start : start + 36].decode("ascii")


_VERSION = b'"schema_version":'
_CORRELATION = b'"correlation_id":"'
_ENVELOPE_END = 512  # the envelope's fields open every document


def envelope_headers(document: bytes) -> dict[str, str]:
    """Schema version and correlation id as headers, read from the envelope's bytes."""
    headers: dict[str, str] = {}
    start = document.find(_VERSION, 0, _ENVELOPE_END)
    if start >= 0:
        start += len(_VERSION)
        end = start
        while end < len(document) and document[end : end + 1].isdigit():
            end += 1
        headers[H_SCHEMA] = document[start:end].decode("ascii")
    start = document.find(_CORRELATION, 0, _ENVELOPE_END)
    if start >= 0:
        start += len(_CORRELATION)
        headers[H_CORRELATION] = document[start : start + 36].decode("ascii")
    return headers


class Relay:
    """An event is recorded once, then published from the record: the store and the topics
    never disagree for long. Delivery is at least once; consumers are idempotent."""

    def __init__(
        self,
        store: ExecutionStore,
        bus: EventBus,
        io: StoreThread,
        *,
        batch_size: int = 1000,
        idle_poll_s: float = 0.05,
    ) -> None:
        self.store, self.bus, self.io = store, bus, io
        self.batch_size = batch_size
        self.idle_poll_s = idle_poll_s
        self.position = 0
        self._tracked_at = 0
        self._tracked_time = 0.0
        # Events this process just recorded, so publishing them needs no read of the store.
        self._recent: deque[tuple[int, StoredEvent]] = deque(maxlen=10_000)
        self._wakeup = asyncio.Event()
        self._drained = False
        self._stopping = asyncio.Event()
        self.published = 0

    def start_position(self) -> int:
        """On a durable bus, resume after the last published event. On a bus that lost its
        messages (embedded restart) resume where consumers had not yet settled."""
        published = self.store.tracked(RELAY)
        if self.bus.durable:
            return published
        settled = self.store.tracked(RELAY + "/settled")
        return min(published, settled)

    def wake(self) -> None:
        self._wakeup.set()

    def offer(self, positions: list[int], stored: list[StoredEvent]) -> None:
        """A write of this process: remember it and publish soon."""
        self._recent.extend(zip(positions, stored, strict=True))
        self._wakeup.set()

    async def _next_batch(self) -> list[tuple[int, StoredEvent]]:
        """The next events in position order: from what this process recorded when they
        follow on without a gap, else (other writers, restarts) from the store."""
        recent = self._recent
        while recent and recent[0][0] <= self.position:
            recent.popleft()
        if recent and recent[0][0] == self.position + 1:
            batch: list[tuple[int, StoredEvent]] = []
            expected = self.position + 1
            while recent and recent[0][0] == expected and len(batch) < self.batch_size:
                batch.append(recent.popleft())
                expected += 1
            # All this process recorded is out: wait for the next write (or the idle
            # poll, which reads the store for other writers) instead of reading now.
            self._drained = not recent
            return batch
        self._drained = False
        notes = await self.io.run(
            self.store.process_recorder.select_notifications, self.position + 1, self.batch_size
        )
        return [(note.id, note) for note in notes]

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    async def track_now(self) -> None:
        """Record how far publishing got: a clean stop leaves nothing to republish."""
        self._tracked_time = 0.0
        with suppress(Exception):
            await self._track_positions()

    async def run(self) -> None:
        self.position = await self.io.run(self.start_position)
        while not self._stopping.is_set():
            self._wakeup.clear()
            try:
                sent = await self.publish_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay failed to publish; retrying")
                await asyncio.sleep(0.5)
                continue
            if not sent or self._drained:
                # Positions are recorded when idle (or every TRACK_EVERY events): after a
                # crash a few events are published again, which consumers ignore.
                try:
                    await self._track_positions()
                except Exception as error:
                    log.warning("relay could not record its position: %s", error)
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self.idle_poll_s)
                except TimeoutError:
                    pass

    async def publish_once(self) -> int:
        notes = await self._next_batch()
        if not notes:
            return 0
        messages: list[Message] = []
        for position, note in notes:
            type_name = note.topic.removeprefix(TOPIC_PREFIX)
            value = note.state
            if self.store.mapper.compressor or self.store.mapper.cipher:
                event = cast(DomainEvent, self.store.mapper.to_domain_event(note))
                value = to_json(event)
            key = execution_id_of(value)
            headers = {H_TYPE: type_name, H_POSITION: str(position), **envelope_headers(value)}
            messages.extend(
                Message(topic=t, key=key, value=value, headers=headers)
                for t in topics_for(type_name)
            )
        await self.bus.publish(messages)
        self.position = notes[-1][0]
        self.published += len(notes)
        if self.position - self._tracked_at >= TRACK_EVERY:
            self._tracked_time = 0.0
            await self._track_positions()
        return len(notes)

    async def _track_positions(self) -> None:
        now = time.monotonic()
        if now - self._tracked_time < TRACK_INTERVAL_S:
            return
        self._tracked_time = now
        tracks: list[tuple[str, int]] = []
        position = self.position
        if position > self._tracked_at:
            tracks.append((RELAY, position))
        if not self.bus.durable:  # read on the loop, where the bus lives
            lowest = self.bus.settled_position()
            tracks.append((RELAY + "/settled", position if lowest is None else lowest - 1))
        if tracks:
            await self.io.run(self._track_all, tracks)
        self._tracked_at = max(self._tracked_at, position)

    def _track_all(self, tracks: list[tuple[str, int]]) -> None:
        for name, position in tracks:
            self._track(name, position)

    def _track(self, name: str, position: int) -> None:
        if position > self.store.tracked(name):
            try:
                self.store.record([], (), Tracking(name, position))
            except RecordConflictError:
                pass
