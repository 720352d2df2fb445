"""The worker role: the sole consumer of `execution_tasks`; runs sandboxes, reports back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from uuid import UUID

from codeexec.domain.aggregate import Cause
from codeexec.domain.events import DomainEvent, ExecutionScheduled, SandboxStopRequested
from codeexec.domain.execution import Execution, State, sandbox_id_for
from codeexec.domain.model import RunSpec, Stream
from codeexec.domain.routing import EXECUTION_TASKS
from codeexec.ports.clock import Clock
from codeexec.ports.sandbox import (
    OutputChunk,
    Sandbox,
    SandboxAlreadyStarted,
    SandboxError,
    SandboxRun,
)
from codeexec.service.store import ExecutionStore
from codeexec.service.store_thread import StoreBusy, StoreThread
from codeexec.service.unit_of_work import UnitOfWork
from codeexec.service.worker_identity import WORKER_GROUP

log = logging.getLogger(__name__)

OUTPUT_FLUSH_S = 0.02


class WorkerProcess:
    """Records `ExecutionStarted` atomically with the task's tracking before the sandbox
    starts: a redelivered task finds the execution running and never starts it again.
    Every worker joins one group (competing consumers: each task goes to one of them);
    `worker_id` names this one in the runs it starts.
    `handle` runs in the store thread; runs and sandboxes live on the event loop."""

    topics: tuple[str, ...] = (EXECUTION_TASKS,)

    def __init__(
        self,
        store: ExecutionStore,
        sandbox: Sandbox,
        clock: Clock,
        io: StoreThread,
        worker_id: str = "worker",
        on_finished: Callable[[UUID], None] | None = None,
    ) -> None:
        self.group = WORKER_GROUP
        self.store, self.sandbox, self.clock, self.io = store, sandbox, clock, io
        self.worker_id = worker_id
        self._on_finished = on_finished
        self.runs: dict[str, asyncio.Task[None]] = {}
        self._stop_requested: set[str] = set()
        self._active: dict[str, SandboxRun] = {}

    def interested(self, event_type: str) -> bool:
        return event_type in ("ExecutionScheduled", "SandboxStopRequested")

    def recover(self) -> None:
        pass  # no in-memory decision state

    def handle(self, event: DomainEvent, uow: UnitOfWork) -> None:
        if isinstance(event, ExecutionScheduled):
            execution = uow.get(Execution, event.execution_id)
            if execution is None or execution.state is not State.SCHEDULED:
                return
            cause = uow.cause(event)
            if execution.cancel_requested:
                execution.cancel(cause)
                return
            execution.start(cause, self.worker_id)
            # The task names the execution; its spec is stored once, with the request.
            spec = execution.spec
            assert spec is not None
            uow.later(
                lambda: self.io.call_soon(self._launch, event.execution_id, event.sandbox_id, spec)
            )
        elif isinstance(event, SandboxStopRequested):
            uow.later(lambda: self.io.call_soon(self.stop_sandbox, event.sandbox_id))

    def abandon_lost_runs(self, execution_ids: Iterable[UUID]) -> int:
        """After a restart: runs this worker started died with it; record them as failed
        (never run again: user code runs at most once), keeping the output they recorded."""
        if self.sandbox.runs_survive_restart:
            return 0
        lost = 0
        for execution_id in execution_ids:
            execution = self.store.load(Execution, execution_id)
            if (
                execution is not None
                and execution.state is State.RUNNING
                and execution.worker_id == self.worker_id
                and sandbox_id_for(execution_id) not in self._active
            ):
                recorded = self.store.events_of(execution_id)

                def lose(
                    execution: Execution, cause: Cause, recorded: Iterable[DomainEvent] = recorded
                ) -> None:
                    execution.lose(cause, "sandbox lost: worker restarted", recorded)

                self._finish(execution_id, lose)
                lost += 1
        return lost

    def _launch(self, execution_id: UUID, sandbox_id: str, spec: RunSpec) -> None:
        task = asyncio.get_running_loop().create_task(self._run(execution_id, sandbox_id, spec))
        self.runs[sandbox_id] = task
        task.add_done_callback(lambda _: self.runs.pop(sandbox_id, None))

    def stop_sandbox(self, sandbox_id: str) -> None:
        """Kill a run's sandbox (now, or as soon as it starts); on the event loop."""
        self._stop_requested.add(sandbox_id)
        if sandbox_id in self._active:
            asyncio.get_running_loop().create_task(self.sandbox.stop(sandbox_id))

    async def _run(self, execution_id: UUID, sandbox_id: str, spec: RunSpec) -> None:
        try:
            try:
                run = await self.sandbox.start(sandbox_id, spec)
            except SandboxAlreadyStarted:
                log.warning("sandbox %s was already started; not running it again", sandbox_id)
                return
            except SandboxError as refused:
                reason = str(refused)
                await self._record(execution_id, lambda e, c: e.fail(c, reason))
                return
            self._active[sandbox_id] = run
            if sandbox_id in self._stop_requested:
                await self.sandbox.stop(sandbox_id)
            tail = await self._pump(execution_id, run)
            result = await run.result()

            def finish(execution: Execution, cause: Cause) -> None:
                for stream, stage, data in _coalesce(tail):
                    execution.record_output(cause, stream, data, stage)
                execution.finish(cause, result)

            await self._record(execution_id, finish)
        except Exception as failure:
            log.exception("run of %s failed inside the platform", execution_id)
            message = f"internal error: {failure!r}"
            await self._record(execution_id, lambda e, c: e.fail(c, message))
        finally:
            self._active.pop(sandbox_id, None)
            self._stop_requested.discard(sandbox_id)
            if self._on_finished is not None:
                self._on_finished(execution_id)

    async def _pump(self, execution_id: UUID, run: SandboxRun) -> list[OutputChunk]:
        """Record live output as events. Chunks are held at most OUTPUT_FLUSH_S (a silent
        program's output still goes out that fast) so a flood becomes few events; what is
        held when the run ends is returned and recorded with the result in one write."""
        loop = asyncio.get_running_loop()
        chunks = run.output().__aiter__()
        pending: list[OutputChunk] = []
        flush_at: float | None = None
        next_chunk: asyncio.Future[OutputChunk] = asyncio.ensure_future(anext(chunks))
        try:
            while True:
                timeout = None if flush_at is None else max(flush_at - loop.time(), 0.0)
                done, _ = await asyncio.wait({next_chunk}, timeout=timeout)
                if next_chunk in done:
                    try:
                        chunk = next_chunk.result()
                    except StopAsyncIteration:
                        return pending
                    pending.append(chunk)
                    if flush_at is None:
                        flush_at = loop.time() + OUTPUT_FLUSH_S
                    next_chunk = asyncio.ensure_future(anext(chunks))
                if flush_at is not None and loop.time() >= flush_at and pending:
                    await self._record_output(execution_id, pending)
                    pending, flush_at = [], None
        finally:
            next_chunk.cancel()

    async def _record_output(self, execution_id: UUID, chunks: list[OutputChunk]) -> None:
        def record(execution: Execution, cause: Cause) -> None:
            for stream, stage, data in _coalesce(chunks):
                execution.record_output(cause, stream, data, stage)

        await self._record(execution_id, record, require_running=True)

    async def _record(
        self,
        execution_id: UUID,
        change: Callable[[Execution, Cause], None],
        require_running: bool = False,
    ) -> None:
        """`_finish` in the store thread; a busy store is waited out, never a lost outcome."""
        delay = 0.05
        while True:
            try:
                await self.io.run(self._finish, execution_id, change, require_running)
                return
            except StoreBusy as busy:
                log.warning("recording %s waits for the store: %s", execution_id, busy)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _finish(
        self,
        execution_id: UUID,
        change: Callable[[Execution, Cause], None],
        require_running: bool = False,
    ) -> None:
        """Apply one change to the execution unless it already reached its terminal state
        (for example timed out by the saga while the sandbox was still being stopped)."""
        for attempt in range(5):
            uow = UnitOfWork(self.store, self.clock.now())
            # Its own last write first: only this worker writes a running execution, but
            # for a stop or a deadline (a conflict: then the store is read).
            execution = uow.get(Execution, execution_id, own_write=attempt == 0)
            if execution is None or execution.is_terminal:
                return
            if require_running and execution.state is not State.RUNNING:
                return
            try:
                change(execution, Cause(uow.now, execution.correlation_id, None))
            except BaseException:
                uow.rollback()  # the copy kept of our last write must not keep the change
                raise
            try:
                uow.commit()
                return
            except Exception:
                # A first attempt on our own last write meets what another process wrote
                # since (a stop, a deadline): expected, and retried on a fresh read.
                level = logging.DEBUG if attempt == 0 else logging.WARNING
                log.log(level, "conflict recording %s; retrying", execution_id, exc_info=True)
        log.error("could not record the outcome of %s", execution_id)

    async def drain(self, grace_s: float) -> int:
        """Let the runs in progress finish for up to `grace_s`; returns how many still run.
        (Call it once this worker takes no new tasks.)"""
        runs = list(self.runs.values())
        if runs and grace_s > 0:
            await asyncio.wait(runs, timeout=grace_s)
        return sum(not task.done() for task in runs)

    async def close(self) -> None:
        """Abandon the runs still in progress: nothing more is recorded for them (the next
        start reports them lost, with their output so far), and their sandboxes are killed."""
        active = list(self._active)
        tasks = list(self.runs.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for sandbox_id in active:
            await self.sandbox.stop(sandbox_id)


def _coalesce(chunks: list[OutputChunk]) -> list[tuple[Stream, str, bytes]]:
    """Merge neighbouring chunks of the same stream and stage, keeping their order."""
    merged: list[tuple[Stream, str, bytes]] = []
    for chunk in chunks:
        if merged and merged[-1][:2] == (chunk.stream, chunk.stage):
            merged[-1] = (chunk.stream, chunk.stage, merged[-1][2] + chunk.data)
        else:
            merged.append((chunk.stream, chunk.stage, chunk.data))
    return merged
