"""Replay sessions: re-emit stored events to a topic, marked so nobody takes them as work."""

from __future__ import annotations

import asyncio
import logging
import uuid
from uuid import UUID

from codeexec.domain.aggregate import Cause
from codeexec.domain.operations_events import ReplayFilter, ReplayRequested
from codeexec.domain.replay import ReplaySession, matches
from codeexec.domain.routing import DEAD_LETTERS, TOPICS
from codeexec.ports.bus import H_POSITION, H_REPLAY, H_TYPE, EventBus, Message
from codeexec.ports.clock import Clock
from codeexec.service.relay import envelope_headers
from codeexec.service.store import ExecutionStore
from codeexec.service.store_thread import StoreThread
from codeexec.service.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


REPLAY_TARGETS = frozenset(TOPICS) - {DEAD_LETTERS}
"""Replays never go to the DLQ topic: they are not failures and would be parked."""


class InvalidReplay(ValueError):
    """A replay request that cannot be carried out (names the offending field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ReplayService:
    """Runs sessions batch by batch: publish the batch, then record its progress. A pause
    or a graceful stop takes effect between batches, so each event goes out once.
    Its synchronous methods touch the store: call them in the store thread."""

    def __init__(self, store: ExecutionStore, bus: EventBus, clock: Clock, io: StoreThread) -> None:
        self.store, self.bus, self.clock, self.io = store, bus, clock, io
        self.ids: list[UUID] = []
        self._due: dict[UUID, float] = {}  # session -> loop time of its next batch (pacing)
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self.published = 0

    def fold(self, event: object) -> None:
        if isinstance(event, ReplayRequested) and event.aggregate_id not in self.ids:
            self.ids.append(event.aggregate_id)

    def create(
        self,
        admin: str,
        filters: ReplayFilter,
        target_topic: str,
        *,
        batch_size: int = 500,
        rate_per_s: float | None = None,
        dry_run: bool = False,
    ) -> ReplaySession:
        if target_topic not in REPLAY_TARGETS:
            allowed = ", ".join(sorted(REPLAY_TARGETS))
            raise InvalidReplay("target_topic", f"must be one of {allowed}, not {target_topic!r}")
        if filters.since and filters.until and filters.since >= filters.until:
            raise InvalidReplay("filters.until", "must be after filters.since")
        end = self.store.max_position()
        if filters.until_position > end:
            raise InvalidReplay(
                "filters.until_position", f"the store ends at position {end}, not after"
            )
        if not filters.until_position:
            filters = filters.model_copy(update={"until_position": self.store.max_position()})
        session_id = uuid.uuid4()
        session = ReplaySession.create(
            session_id,
            admin,
            filters,
            target_topic,
            batch_size,
            rate_per_s,
            dry_run,
            Cause(self.clock.now(), session_id, None),
        )
        self.store.record(session.collect_events(), [session])
        self.fold_session(session)
        return session

    def fold_session(self, session: ReplaySession) -> None:
        if session.id not in self.ids:
            self.ids.append(session.id)
        self.io.call_soon(self._wakeup.set)

    def get(self, session_id: UUID) -> ReplaySession:
        session = self.store.load(ReplaySession, session_id)
        if session is None:
            raise LookupError(f"replay session {session_id} not found")
        return session

    def sessions(self) -> list[ReplaySession]:
        return [self.get(i) for i in self.ids]

    def _change(self, session_id: UUID, action: str, by: str) -> ReplaySession:
        uow = UnitOfWork(self.store, self.clock.now())
        session = uow.get(ReplaySession, session_id)
        if session is None:
            raise LookupError(f"replay session {session_id} not found")
        getattr(session, action)(Cause(uow.now, session.id, None), by)
        uow.commit()
        self.io.call_soon(self._wakeup.set)
        return session

    def pause(self, session_id: UUID, by: str) -> ReplaySession:
        return self._change(session_id, "pause", by)

    def resume(self, session_id: UUID, by: str) -> ReplaySession:
        return self._change(session_id, "resume", by)

    def cancel(self, session_id: UUID, by: str) -> ReplaySession:
        return self._change(session_id, "cancel", by)

    async def run(self) -> None:
        """Sessions take turns a batch at a time; a paced session waits for its next due
        time without holding up the others."""
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            self._wakeup.clear()
            worked = False
            for session_id in list(self.ids):
                if self._stopping.is_set():
                    break
                if self._due.get(session_id, 0.0) > loop.time():
                    continue
                try:
                    worked = await self.step(session_id) or worked
                except Exception:
                    log.exception("replay %s failed a batch; will retry", session_id)
                    self._due[session_id] = loop.time() + 0.5
            if not worked:
                upcoming = [t for t in self._due.values() if t > loop.time()]
                idle = min([0.5, *(t - loop.time() for t in upcoming)])
                try:
                    await asyncio.wait_for(self._wakeup.wait(), max(idle, 0.001))
                except TimeoutError:
                    pass

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    async def step(self, session_id: UUID) -> bool:
        """Replay one batch of a running session. Returns whether there was work."""
        started = asyncio.get_running_loop().time()
        batch = await self.io.run(self._next_batch, session_id)
        if batch is None:
            return False
        last, read, matched, messages = batch
        sent = failed = 0
        if messages:
            try:
                await self.bus.publish(messages)
                sent = len(messages)
            except Exception:
                log.exception("replay %s could not publish a batch", session_id)
                failed = len(messages)
        current = await self.io.run(self._progress, session_id, last, read, matched, sent, failed)
        if current is None:
            return False
        self.published += sent
        if current.rate_per_s and sent:
            self._due[session_id] = started + sent / current.rate_per_s
        return True

    def _next_batch(self, session_id: UUID) -> tuple[int | None, int, int, list[Message]] | None:
        """The session's next page: its last position, how many events it holds and how
        many matched, and the messages to publish (none in a dry run)."""
        session = self.store.load(ReplaySession, session_id)
        if session is None or session.finished or session.state.value != "running":
            return None
        end = session.filters.until_position
        remaining = end - session.position
        page = self.store.read_documents(session.position + 1, min(session.batch_size, remaining))
        page = [(p, e, d) for p, e, d in page if p <= end] if remaining > 0 else []
        selected = [(p, e, d) for p, e, d in page if matches(session.filters, p, e)]
        messages = [
            Message(
                session.target_topic,
                str(e.execution_id),
                document,
                {
                    H_TYPE: e.type_name,
                    H_POSITION: str(p),
                    H_REPLAY: str(session.id),
                    **envelope_headers(document),
                },
            )
            for p, e, document in selected
            if not session.dry_run
        ]
        last = page[-1][0] if page else None
        return last, len(page), len(selected), messages

    def _progress(
        self, session_id: UUID, last: int | None, read: int, matched: int, sent: int, failed: int
    ) -> ReplaySession | None:
        """Record a published batch's progress (completing the session at its end)."""
        uow = UnitOfWork(self.store, self.clock.now())
        current = uow.get(ReplaySession, session_id)
        assert current is not None
        if current.finished:
            return None
        end = current.filters.until_position
        cause = Cause(uow.now, current.id, None)
        position = end if last is None else last
        if position > current.position:
            current.progress(cause, position, matched, sent, read - matched, failed)
        if position >= end:
            current.complete(cause)
        uow.commit()
        return current
