"""The command service: submit, cancel, follow and wait for executions, in any process.

It records commands in the store and answers from the read model, needing no role in the
same process. What this process just wrote is read back at once (read your writes) from
views built from the recorded events themselves, kept beside the read model until the
read model shows them: a shared read model is only ever written by the projections role,
in log order."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from codeexec.adapters.execution_fold import fold, is_new, new_view, shown
from codeexec.domain.admission import RecentSubmission, Refusal
from codeexec.domain.aggregate import Cause
from codeexec.domain.events import TERMINAL_EVENT_TYPES, DomainEvent, ExecutionRequested
from codeexec.domain.execution import Execution
from codeexec.domain.model import RunSpec, request_digest
from codeexec.ports.clock import Clock
from codeexec.ports.execution_queries import ExecutionQueries
from codeexec.ports.read_model import ExecutionReadModel, ExecutionView
from codeexec.service.admission import Admission
from codeexec.service.projections import ExecutionFeed
from codeexec.service.store import ExecutionStore
from codeexec.service.store_thread import StoreBusy, StoreThread
from codeexec.service.unit_of_work import UnitOfWork
from codeexec.service.unshown import Unshown

log = logging.getLogger(__name__)
T = TypeVar("T")

IDEMPOTENCY_NAMESPACE = UUID("0b7c8f0e-6a3b-4c52-8a4e-2f4a5d7e9c11")
EVENTS_PAGE = 8
"""Events read from the store at a time when following an execution."""
SILENCE_S = 1.0  # a waiter that heard nothing for this long reads the store itself
LAG_FIRST_S, LAG_MAX_S = 0.005, 0.05  # looks again at a read model behind a heard end
OWN_VIEWS = 10_000  # views of this process's writes kept until the read model shows them


class NotFound(LookupError):
    """No such execution, or it belongs to another user (indistinguishable on purpose)."""


class IdempotencyKeyReused(Exception):
    """The idempotency key was used before for a different request (spec or priority)."""

    def __init__(self, key: str, execution_id: UUID) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was used for a different request "
            f"(execution {execution_id}); use a new key for a new request"
        )
        self.key, self.execution_id = key, execution_id


def view_of(events: Sequence[tuple[int | None, DomainEvent]]) -> ExecutionView | None:
    """An execution's view folded from its own events (the first is its request)."""
    view: ExecutionView | None = None
    for position, event in events:
        if isinstance(event, ExecutionRequested) and view is None:
            view = new_view(event, position or 0)
        if view is not None and shown(event) and is_new(view, event):
            fold(view, event)
    return view


class CommandService:
    def __init__(
        self,
        store: ExecutionStore,
        io: StoreThread,
        clock: Clock,
        read_model: ExecutionReadModel,
        queries: ExecutionQueries,
        feed: ExecutionFeed,
        admission: Admission,
    ) -> None:
        self.store, self.io, self.clock = store, io, clock
        self.read_model, self.queries = read_model, queries
        self.feed, self.admission = feed, admission
        self._own: OrderedDict[UUID, ExecutionView] = OrderedDict()
        # Per user: submissions on their way into the store, and those recorded that the
        # read model may not show yet. Admission counts both.
        self._submitting: dict[str, list[RecentSubmission]] = {}
        self._unshown = Unshown(queries, clock)

    # -- reading views ------------------------------------------------------------------------

    def view(self, execution_id: UUID) -> ExecutionView | None:
        """The freshest view: the read model's, or this process's own if it is newer. It
        reads the read model in place (the embedding API's `get`)."""
        return self._freshest(execution_id, self.read_model.get(execution_id))

    async def find_view(self, execution_id: UUID) -> ExecutionView | None:
        """`view`, the read model asked without blocking the event loop."""
        return self._freshest(execution_id, await self.queries.get(execution_id))

    def _freshest(self, execution_id: UUID, shared: ExecutionView | None) -> ExecutionView | None:
        own = self._own.get(execution_id)
        if own is None:
            return shared
        if shared is not None and shared.version_seen >= own.version_seen:
            del self._own[execution_id]  # the read model caught up
            return shared
        return own

    def _remember(self, view: ExecutionView) -> ExecutionView:
        self._own[view.id] = view
        self._own.move_to_end(view.id)
        while len(self._own) > OWN_VIEWS:
            self._own.popitem(last=False)
        return view

    # -- submit ---------------------------------------------------------------------------

    async def submit(
        self,
        user_id: str,
        spec: RunSpec,
        *,
        priority: int = 0,
        idempotency_key: str | None = None,
        correlation_id: UUID | None = None,
    ) -> ExecutionView:
        digest = request_digest(spec, priority)
        if idempotency_key is not None:
            execution_id = uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{user_id}\0{idempotency_key}")
        else:
            execution_id = uuid.uuid4()
        now = self.clock.now()
        pending = self._submitting.setdefault(user_id, [])
        # Counted by every submission of the user admitted while this one is checked (the
        # check awaits the read model): of two racing for the last slot, one is refused.
        earlier = [*pending]
        mine = RecentSubmission(now, spec.payload_bytes, True)
        pending.append(mine)
        try:
            unshown = self._unshown.of(user_id)
            refusal = await self.admission.refusal(user_id, spec, now, earlier, unshown)
            cause = Cause(now, correlation_id or execution_id, None)
            execution = Execution.request(
                execution_id, user_id, spec, cause, priority, idempotency_key, digest
            )
            # One store call: a concurrent repeat of the key cannot slip in between.
            recorded = await self.io.ask(self._record_request, execution, refusal, now)
        finally:
            pending.remove(mine)
            if not pending:
                del self._submitting[user_id]
        if recorded is None:
            return await self.catch_up(execution_id)  # a repeat: the original execution
        self._unshown.add(user_id, mine)
        view = view_of(recorded)
        assert view is not None
        return self._remember(view)

    def _record_request(
        self, execution: Execution, refusal: Refusal | None, now: datetime
    ) -> Sequence[tuple[int, DomainEvent]] | None:
        """In the store thread: None for a repeat of an idempotency key; else the refusal
        recorded and raised, or the request recorded (its positions and events)."""
        key, digest = execution.idempotency_key, execution.request_digest
        if key is not None:
            existing = self.store.load(Execution, execution.id)
            if existing is not None:
                if existing.request_digest != digest:
                    raise IdempotencyKeyReused(key, existing.id)
                return None
        if refusal is not None:
            assert execution.spec is not None
            spec, priority = execution.spec, execution.priority
            raise self.admission.refuse(refusal, execution.user_id, spec, priority, digest, now)
        events = execution.collect_events()
        positions = self.store.record(events, [execution])
        return tuple(zip(positions, events, strict=True))

    # -- cancel ---------------------------------------------------------------------------

    async def cancel(self, execution_id: UUID, requested_by: str) -> ExecutionView:
        if await self.io.ask(self._request_cancel, execution_id, requested_by):
            return await self.catch_up(execution_id)
        view = await self.find_view(execution_id)
        assert view is not None
        return view

    def _request_cancel(self, execution_id: UUID, requested_by: str) -> bool:
        for _ in range(5):
            uow = UnitOfWork(self.store, self.clock.now())
            execution = uow.get(Execution, execution_id)
            if execution is None:
                raise NotFound(f"execution {execution_id} not found")
            cause = Cause(uow.now, execution.correlation_id, None)
            if not execution.request_cancel(cause, requested_by):
                return False
            try:
                uow.commit()
                return True
            except StoreBusy:
                raise
            except Exception:
                log.info("cancel of %s conflicted; retrying", execution_id)
        return False

    # -- following ------------------------------------------------------------------------

    async def events(
        self, execution_id: UUID, after_version: int = 0, *, follow: bool = True
    ) -> AsyncIterator[DomainEvent]:
        version = after_version
        terminal = False
        while True:
            signal = self.feed.watch(execution_id)
            try:
                while True:
                    page = await self.io.run(
                        self.store.events_of, execution_id, version, EVENTS_PAGE
                    )
                    for event in page:
                        version = event.aggregate_version
                        terminal = terminal or isinstance(event, TERMINAL_EVENT_TYPES)
                        yield event
                    if len(page) < EVENTS_PAGE:
                        break
                if terminal or not follow:
                    return
                # Nothing new: started at or past the end, or a missing execution.
                if version == after_version and await self.io.run(
                    self._ended_or_missing, execution_id
                ):
                    return
                with suppress(TimeoutError):
                    async with asyncio.timeout(1.0):  # wait_for may swallow a cancel (3.11)
                        await signal.wait()
            finally:
                self.feed.unwatch(execution_id, signal)

    def _ended_or_missing(self, execution_id: UUID) -> bool:
        execution = self.store.load(Execution, execution_id)
        return execution is None or execution.is_terminal

    async def last_version(self, execution_id: UUID) -> int:
        return await self.io.ask(self._last_version, execution_id)

    def _last_version(self, execution_id: UUID) -> int:
        execution = self.store.load(Execution, execution_id)
        return execution.version if execution is not None else 0

    async def wait(self, execution_id: UUID, timeout: float | None = None) -> ExecutionView:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        heard, ended = True, True
        told_end = False  # an end was heard: the view is terminal once the read model has it
        pause, behind = LAG_FIRST_S, 0.0  # looking again at a read model behind a heard end
        while True:
            signal = self.feed.watch(execution_id)
            try:
                # A wake-up for an event that does not end the run cannot make the view
                # terminal: the view is read on the first turn, at an end, after silence.
                if ended or not heard:
                    view = await self.find_view(execution_id)
                    if view is None or (not view.terminal and not heard):
                        view = await self.fold_from_store(
                            execution_id, view, quiet=view is not None
                        )
                    if view.terminal:
                        return view
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return await self.catch_up(execution_id, quiet=True)
                # The end was heard before the read model showed it (its projections may
                # run in another process): look at it again soon, not after SILENCE_S. The
                # answer still waits for the read model, which admission counts from.
                lagging = told_end and behind < SILENCE_S
                wait_s = pause if lagging else SILENCE_S
                heard = False
                with suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining or wait_s, wait_s)):  # cancels
                        await signal.wait()
                    heard = True
            finally:
                self.feed.unwatch(execution_id, signal)
            ended = signal.ended
            if lagging and not heard:
                behind += pause
                pause = min(pause * 1.5, LAG_MAX_S)
                heard = ended = True  # the read model again; the store once SILENCE_S passed
            told_end = told_end or ended

    async def catch_up(self, execution_id: UUID, *, quiet: bool = False) -> ExecutionView:
        """The view folded from the store's events, when the read model lags behind them.
        `quiet`: a busy store leaves the view as it is instead of raising StoreBusy."""
        return await self.fold_from_store(
            execution_id, await self.find_view(execution_id), quiet=quiet
        )

    async def fold_from_store(
        self, execution_id: UUID, view: ExecutionView | None, *, quiet: bool = False
    ) -> ExecutionView:
        """`catch_up` for a caller that has just read `view` (None: not shown yet)."""
        try:
            events = await self.io.ask(self.store.events_of, execution_id)
        except StoreBusy:
            if not quiet or view is None:
                raise
            return view
        folded = view_of([(view.seq if view else None, e) for e in events])
        if folded is None:
            raise NotFound(f"execution {execution_id} not found")
        if view is not None and view.version_seen >= folded.version_seen:
            return view
        if view is not None:
            folded.seq = view.seq
        return self._remember(folded)

    async def ask(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.io.ask(fn, *args)
