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
from requests go before the roles' background work."""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from eventsourcing.persistence import OperationalError

log = logging.getLogger(__name__)

T = TypeVar("T")

_PENDING, _RUNNING, _DROPPED, _EXPIRED = "pending", "running", "dropped", "expired"
_STOP = object()


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
    __slots__ = ("args", "fn", "future", "state")

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...], future: asyncio.Future[T]):
        self.fn, self.args, self.future = fn, args, future
        self.state = _PENDING


class StoreThread:
    def __init__(
        self, busy_timeout_s: float, name: str = "codeexec-store", *, inline: bool = False
    ) -> None:
        self.busy_timeout_s = busy_timeout_s
        self.inline = inline
        self.loop = asyncio.get_running_loop()
        # Requests wait in `_requests` and go first; every job also puts an item on `_wake`
        # (a background job itself, or None for a request), which is what the thread waits on.
        self._wake: queue.SimpleQueue[_Job[Any] | object | None] = queue.SimpleQueue()
        self._requests: deque[_Job[Any]] = deque()
        self._state = threading.Lock()  # guards each job's pending -> running/dropped step
        self._in_call = False  # set while the thread runs a call: what it posts waits
        self._posted: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
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
        """Run `last` after every call already queued, then end the thread."""
        if last is not None:
            await self.run(last)
        if not self.inline:
            self._wake.put(_STOP)
            await asyncio.to_thread(self._thread.join)

    def _submit(self, fn: Callable[..., T], args: tuple[Any, ...], request: bool) -> _Job[T]:
        job = _Job(fn, args, self.loop.create_future())
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
        while True:
            item = self._wake.get()
            while self._requests:
                self._execute(self._requests.popleft())
            if item is _STOP:
                return
            if isinstance(item, _Job):
                self._execute(item)

    def _execute(self, job: _Job[Any]) -> None:
        with self._state:
            if job.state != _PENDING:
                return  # its caller gave up before its turn came
            job.state = _RUNNING
        result, error, posted = self._call(job.fn, job.args)
        self.loop.call_soon_threadsafe(_complete, job, posted, result, error)

    def _call_inline(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        result, error, posted = self._call(fn, args)
        _run_posted(posted)
        if error is not None:
            raise error
        return cast(T, result)

    def _call(
        self, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> tuple[Any, BaseException | None, list[tuple[Callable[..., object], tuple[Any, ...]]]]:
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


def _run_posted(posted: list[tuple[Callable[..., object], tuple[Any, ...]]]) -> None:
    for fn, args in posted:
        try:
            fn(*args)
        except Exception:
            log.exception("%r, posted by a store call, failed", fn)


def _complete(
    job: _Job[Any],
    posted: list[tuple[Callable[..., object], tuple[Any, ...]]],
    result: Any,
    error: BaseException | None,
) -> None:
    """On the loop: what the call posted, then its outcome to its caller."""
    _run_posted(posted)
    if job.future.cancelled():
        return  # its caller went away
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)
