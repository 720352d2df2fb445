"""StoreThread: the one thread that does the event store's I/O, so the event loop never waits.

A store call can block for as long as the database makes it (another connection holding a
lock, a slow disk). Made on the event loop, it froze every request, health probe and role.
Every store call from async code goes through one dedicated thread instead: one thread keeps
writes serialized and keeps each role's state single-threaded (a role's consumer runs its
whole batch, handling and commit, in this thread). An in-memory store has no I/O to wait
for: with `inline=True` its calls run at once on the loop, with the same semantics, without
paying for the hand-over between threads.

`run` waits as long as the store needs (roles: their work must not be lost); `ask` waits at
most `busy_timeout_s` for its turn (requests: answer "busy, retry" rather than hang). Calls
from requests go before the roles' background work.

Group commit: the thread runs the calls that are waiting in turns (`codeexec.ports.
store_turn`), and a datastore that supports it (SQLite, PostgreSQL) merges the turn's
transactions into one database transaction, a savepoint each. A turn takes calls while some
are waiting, up to `turn_calls` of them and for about `turn_s` of work; its callers are
answered after its one commit, together, with one wake-up of the event loop. If that commit
fails, every call of the turn fails with StoreBusy (nothing of it was recorded), except the
calls that a datastore's checkpoint (a commit before the turn's end: PostgreSQL's, with an
insert that takes the events table's lock) left with nothing unsaved: their writes are
recorded, and they get their own answers. CODEEXEC_STORE_TURN_CALLS (default 64; 1 turns
group commit off) and CODEEXEC_STORE_TURN_MS (default 5) set them."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, Generic, TypeVar, cast

from eventsourcing.persistence import OperationalError

from codeexec.ports.store_turn import StoreTurn, store_turn

log = logging.getLogger(__name__)

T = TypeVar("T")

_PENDING, _RUNNING, _DROPPED, _EXPIRED = "pending", "running", "dropped", "expired"
_STOP = object()
TURN_CALLS, TURN_MS = "CODEEXEC_STORE_TURN_CALLS", "CODEEXEC_STORE_TURN_MS"

Posted = list[tuple[Callable[..., object], tuple[Any, ...]]]


def _setting(name: str, default: float, least: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = math.nan
    if not value >= least:
        raise ValueError(f"{name} must be a number of at least {least:g}, not {raw!r}")
    return value


class StoreBusy(RuntimeError):
    """The event store did not answer in time (locked by another connection, overloaded or
    unreachable). Nothing was recorded by the call that raised it; retry later."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def retry_after(self) -> str:
        """The Retry-After header value: whole seconds, at least one."""
        return str(max(1, math.ceil(self.retry_after_s)))


class _Job(Generic[T]):
    __slots__ = ("alone", "args", "fn", "future", "state")

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...], future: asyncio.Future[T]):
        self.fn, self.args, self.future = fn, args, future
        self.state = _PENDING
        self.alone = False  # runs in a turn of its own (closing the store: after a commit)


Outcome = tuple[_Job[Any], Posted, Any, BaseException | None]


class StoreThread:
    def __init__(
        self,
        busy_timeout_s: float,
        name: str = "codeexec-store",
        *,
        inline: bool = False,
        turn_calls: int | None = None,
        turn_s: float | None = None,
    ) -> None:
        self.busy_timeout_s = busy_timeout_s
        self.inline = inline
        self.turn_calls = turn_calls or int(_setting(TURN_CALLS, 64, 1))
        self.turn_s = _setting(TURN_MS, 5, 0) / 1000 if turn_s is None else turn_s
        self.turns = 0  # turns that ended, and the calls they ran (the mean group size)
        self.turned_calls = 0
        self.loop = asyncio.get_running_loop()
        # Requests wait in `_requests` and go first; every job also puts an item on `_wake`
        # (a background job itself, or None for a request), which is what the thread waits on.
        self._wake: queue.SimpleQueue[_Job[Any] | object | None] = queue.SimpleQueue()
        self._requests: deque[_Job[Any]] = deque()
        self._state = threading.Lock()  # guards each job's pending -> running/dropped step
        self._in_call = False  # set while the thread runs a call: what it posts waits
        self._posted: Posted = []
        if inline:
            self._thread = threading.current_thread()
        else:
            self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
            self._thread.start()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the store thread and wait however long the store needs.
        Cancelling the caller drops the call if it has not started yet."""
        if self.inline:
            return self._call_inline(fn, args)
        job = self._submit(fn, args, request=False)
        try:
            return await job.future
        except asyncio.CancelledError:
            self._drop(job, _DROPPED)
            raise

    async def ask(self, fn: Callable[..., T], *args: Any) -> T:
        """Like `run`, for requests: goes first, and raises StoreBusy if its turn does not
        come within `busy_timeout_s` (then it never runs). A call that did start is awaited:
        it ends within the store's own lock timeout, so nothing it records goes unreported."""
        if self.inline:
            return self._call_inline(fn, args)
        job = self._submit(fn, args, request=True)
        timer = self.loop.call_later(self.busy_timeout_s, self._drop, job, _EXPIRED)
        try:
            return await job.future
        except asyncio.CancelledError:
            if job.state == _EXPIRED:
                raise StoreBusy(
                    f"the event store is busy (no answer within {self.busy_timeout_s:g} s)",
                    self.busy_timeout_s,
                ) from None
            self._drop(job, _DROPPED)
            raise
        finally:
            timer.cancel()

    def call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Run `fn(*args)` on the event loop. From a store call, it runs once the call ends,
        just before its caller resumes (one wake-up of the loop for all it posted)."""
        if self._in_call and threading.get_ident() == self._thread.ident:
            self._posted.append((fn, args))
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    async def close(self, last: Callable[[], object] | None = None) -> None:
        """Run `last` after every call already queued (in a turn of its own: the calls
        before it are committed first), then end the thread."""
        if last is not None:
            if self.inline:
                self._call_inline(last, ())
            else:
                job = self._submit(last, (), request=False, alone=True)
                await job.future
        if not self.inline:
            self._wake.put(_STOP)
            await asyncio.to_thread(self._thread.join)

    def _submit(
        self, fn: Callable[..., T], args: tuple[Any, ...], request: bool, alone: bool = False
    ) -> _Job[T]:
        job = _Job(fn, args, self.loop.create_future())
        job.alone = alone
        if request:
            self._requests.append(job)
            self._wake.put(None)
        else:
            self._wake.put(job)
        return job

    def _drop(self, job: _Job[Any], why: str) -> None:
        """Drop a call that has not started (its caller gave up, or its turn came too late)."""
        with self._state:
            if job.state != _PENDING:
                return
            job.state = why
        if why == _EXPIRED:
            job.future.cancel()

    def _serve(self) -> None:
        stop = False
        while not stop:
            item = self._wake.get()
            stop = item is _STOP
            first = [item] if isinstance(item, _Job) else []
            while self._requests or first:
                stop = self._turn(first) or stop

    def _turn(self, first: list[_Job[Any]]) -> bool:
        """Run calls in one turn: the waiting requests, then `first`, then (grouping)
        whatever else waits, within the turn's bounds; commit; answer them all. Returns
        whether the thread was asked to stop meanwhile."""
        group = self.turn_calls > 1
        outcomes: list[Outcome] = []
        stop = False
        durable = 0  # the first calls, whose writes a checkpoint committed
        checkpoints = 0
        deadline = time.perf_counter() + self.turn_s
        with store_turn() if group else nullcontext() as turn:
            while True:
                if outcomes and (
                    len(outcomes) >= self.turn_calls or time.perf_counter() >= deadline
                ):
                    break  # what still waits, `first` included, goes in the next turn
                job = self._requests.popleft() if self._requests else None
                if job is None and first:
                    job = first.pop()
                if job is None:
                    if not group or stop:
                        break
                    try:
                        item = self._wake.get_nowait()
                    except queue.Empty:
                        break
                    stop = item is _STOP
                    if not isinstance(item, _Job):
                        continue  # a request's wake-up (it is in the deque), or the stop
                    job = item
                if job.alone and outcomes:
                    first.append(job)  # after this turn's commit
                    break
                if self._claim(job):
                    result, error, posted = self._call(job.fn, job.args)
                    outcomes.append((job, posted, result, error))
                if turn is not None and turn.checkpoints != checkpoints:
                    checkpoints = turn.checkpoints
                    if not turn.unsaved:
                        durable = len(outcomes)
                if not group or job.alone:
                    break
            if turn is not None:
                outcomes = outcomes[:durable] + self._end(turn, outcomes[durable:])
        if outcomes:
            self.turns += 1
            self.turned_calls += len(outcomes)
            self.loop.call_soon_threadsafe(_complete_all, outcomes)
        return stop

    def _end(
        self,
        turn: StoreTurn,
        outcomes: list[Outcome],
    ) -> list[Outcome]:
        """Commit the turn; if that fails, every call of it (since its last checkpoint)
        fails, and what they posted (acting on what was not recorded) is dropped."""
        try:
            turn.commit()
            return outcomes
        except BaseException as failure:
            turn.abort()
            busy = StoreBusy(f"the event store is busy: {failure}", self.busy_timeout_s)
            busy.__cause__ = failure
            log.warning("a store turn of %d calls failed to commit: %s", len(outcomes), failure)
            return [(job, [], None, busy) for job, _, _, _ in outcomes]

    def _claim(self, job: _Job[Any]) -> bool:
        with self._state:
            if job.state != _PENDING:
                return False  # its caller gave up before its turn came
            job.state = _RUNNING
            return True

    def _call_inline(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        result, error, posted = self._call(fn, args)
        _run_posted(posted)
        if error is not None:
            raise error
        return cast(T, result)

    def _call(
        self, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> tuple[Any, BaseException | None, Posted]:
        self._in_call = True
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args)
        except OperationalError as failure:
            # Locked, busy or unreachable: the call's transaction was rolled back.
            error = StoreBusy(f"the event store is busy: {failure}", self.busy_timeout_s)
            error.__cause__ = failure
        except BaseException as failure:
            error = failure
        finally:
            self._in_call = False
        posted, self._posted = self._posted, []
        return result, error, posted


def _run_posted(posted: Posted) -> None:
    for fn, args in posted:
        try:
            fn(*args)
        except Exception:
            log.exception("%r, posted by a store call, failed", fn)


def _complete_all(outcomes: list[Outcome]) -> None:
    """On the loop, for each call of a turn in order: what it posted, then its outcome."""
    for job, posted, result, error in outcomes:
        _run_posted(posted)
        if job.future.cancelled():
            continue  # its caller went away
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
