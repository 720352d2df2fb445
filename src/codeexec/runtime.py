"""The embedded runtime: every role in one process, and the public Python API."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import math
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import PersistenceError

from codeexec.adapters import sqlite_store
from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.adapters.memory_read_model import InMemoryExecutionReadModel
from codeexec.data_dir import private_dir, private_file
from codeexec.domain.admission import RecentSubmission, Refusal
from codeexec.domain.aggregate import Cause
from codeexec.domain.coordinator import CoordinatorConfig, QueueStatus
from codeexec.domain.dead_letter import DeadLetterConfig
from codeexec.domain.events import (
    TERMINAL_EVENT_TYPES,
    DomainEvent,
    ExecutionRequested,
    ExecutionStarted,
    SandboxStopRequested,
)
from codeexec.domain.execution import Execution
from codeexec.domain.model import RunSpec, request_digest
from codeexec.domain.routing import TOPICS
from codeexec.ports.bus import EventBus, Message
from codeexec.ports.clock import Clock, SystemClock
from codeexec.ports.read_model import ExecutionQuery, ExecutionReadModel, ExecutionView, Page
from codeexec.ports.sandbox import Language, Sandbox, UnknownLanguage, UnknownVersion
from codeexec.service.admission import Admission
from codeexec.service.consumer import Consumer, Process
from codeexec.service.coordinator_process import CoordinatorProcess
from codeexec.service.dead_letters import DeadLetterManager, park
from codeexec.service.projections import ExecutionFeed, ProjectionProcess
from codeexec.service.relay import Relay
from codeexec.service.replays import ReplayService
from codeexec.service.saga_orchestrator import SagaOrchestrator
from codeexec.service.store import ExecutionStore
from codeexec.service.store_config import StoreConfig, store_config
from codeexec.service.store_thread import StoreBusy, StoreThread
from codeexec.service.unit_of_work import UnitOfWork
from codeexec.service.worker import WorkerProcess
from codeexec.service.worker_identity import worker_id_for

log = logging.getLogger(__name__)

IDEMPOTENCY_NAMESPACE = UUID("0b7c8f0e-6a3b-4c52-8a4e-2f4a5d7e9c11")
EVENTS_PAGE = 8
"""Events read from the store at a time when following an execution."""
EVENTS_FILE = "events.sqlite3"
T = TypeVar("T")


ALL_ROLES = frozenset(
    {"coordinator", "saga", "worker", "projections", "relay", "dead-letters", "replay"}
)


class DataDirInUse(RuntimeError):
    """Another embedded runtime already runs on this data dir."""


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


class StoreUnreadable(RuntimeError):
    """The event store cannot be opened or read (a corrupt or half-written file)."""

    def __init__(self, path: Path | str, cause: str) -> None:
        super().__init__(f"the event store {path} cannot be read: {cause}")
        self.path, self.cause = path, cause


def check_store(data_dir: Path) -> None:
    """Before announcing a server: raise StoreUnreadable if the data dir's event store is
    corrupt or half-written (it reads every page, so start-up fails early, in one line)."""
    path = data_dir / EVENTS_FILE
    problem = sqlite_store.check_database(path)
    if problem is not None:
        raise StoreUnreadable(path, problem)


@dataclass
class Settings:
    data_dir: Path | None = None
    """Where the SQLite event store lives; None keeps everything in memory."""
    coordinator: CoordinatorConfig = field(default_factory=CoordinatorConfig)
    saga_grace_s: float = 30.0
    worker_id: str | None = None
    """This process's name in the runs its worker starts; None: a random id kept in the
    data dir (stable across restarts; see codeexec.service.worker_identity)."""
    timer_interval_s: float = 0.25
    consumer_max_attempts: int = 3
    dead_letters: DeadLetterConfig = field(default_factory=DeadLetterConfig)
    roles: frozenset[str] = ALL_ROLES
    """Which roles run in this process (all of them when embedded)."""

    sqlite_synchronous: str = "normal"
    """`normal` (WAL): nothing is lost when a process dies; `full`: also survives power loss."""

    store_busy_timeout_s: float = 2.0
    """How long a request waits for the event store (its turn, then a lock another
    connection holds) before it fails with StoreBusy (the API's 503 with Retry-After)."""

    shutdown_grace_s: float = 10.0
    """On stop, how long runs in progress may take to finish; what still runs after it is
    abandoned and reported lost (with its output so far) on the next start."""

    store: str | None = None
    """memory, sqlite or postgres (codeexec.service.store_config); None: CODEEXEC_STORE, else
    sqlite with a data dir, memory without. An exported PERSISTENCE_MODULE is honoured."""

    def store_config(self) -> StoreConfig:
        sqlite = {
            "SQLITE_LOCK_TIMEOUT": str(max(1, math.ceil(self.store_busy_timeout_s))),
            "SQLITE_BUSY_TIMEOUT_S": str(self.store_busy_timeout_s),
            "SQLITE_SYNCHRONOUS": self.sqlite_synchronous,
        }
        return store_config(self.store, self.data_dir, sqlite_env=sqlite)

    def store_env(self) -> dict[str, str]:
        return self.store_config().env


def lock_data_dir(data_dir: Path) -> IO[str]:
    """One embedded runtime per data dir (its roles assume they are alone): take the
    dir's lock, held until the returned file is closed. Raises DataDirInUse. The dir is
    made private to this user first (DataDirUnsafe if it is a shared one)."""
    private_dir(data_dir)
    lock = private_file(data_dir / "runtime.lock")
    handle = open(lock, "r+")  # noqa: SIM115 (held until stop)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise DataDirInUse(f"{data_dir} is in use by {owner}; stop it or choose another") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


def default_sandbox() -> Sandbox:
    import importlib

    module = importlib.import_module("codeexec.adapters.local_sandbox")
    sandbox: Sandbox = module.BubblewrapSandbox()
    return sandbox


class Codeexec:
    """Run untrusted code with a full audit log, embedded in one process.

    async with Codeexec(Settings(data_dir=Path(".codeexec"))) as cx:
        view = await cx.submit("alice", RunSpec(language="python", files=[...]))
        view = await cx.wait(view.id)

    The event store is only ever touched in one thread of its own (`StoreThread`): a slow
    or locked store never stalls the event loop; requests then fail with StoreBusy."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        sandbox: Sandbox | None = None,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        read_model: ExecutionReadModel | None = None,
        processes: Sequence[Process] = (),
    ) -> None:
        """`processes` are extra consumers (webhooks, audit sinks...) that run with the same
        guarantees as the built-in roles: tracked, retried, dead-lettered."""
        self.settings = settings or Settings()
        self.clock: Clock = clock or SystemClock()
        self.sandbox = sandbox or default_sandbox()
        self.bus = bus or InMemoryEventBus()
        self.read_model = read_model or InMemoryExecutionReadModel()
        self.feed = ExecutionFeed()
        self.store: ExecutionStore | None = None
        self._io: StoreThread | None = None
        self._store_file: str | None = None  # the SQLite event store's file, if it is one
        self._tasks: list[asyncio.Task[None]] = []
        self._consumers: list[Consumer] = []
        self._worker: tuple[Consumer, asyncio.Task[None]] | None = None
        self._languages: frozenset[str] = frozenset()
        self.language_list: Sequence[Language] = ()
        self.extra_processes = list(processes)
        self.started = False
        self._replay_task: asyncio.Task[None] | None = None
        self._lock: IO[str] | None = None
        self._listeners: list[Callable[[Sequence[DomainEvent]], None]] = []
        self._local_worker = False  # the worker role runs in this process
        # Per user, submissions on their way into the store: admission counts them.
        self._submitting: dict[str, list[RecentSubmission]] = {}

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Raises DataDirInUse, StoreUnreadable (a corrupt store), or what a role's start
        raised; nothing is left running or locked then."""
        self._lock_data_dir()
        try:
            await self._start_roles()
        except BaseException:
            await self._close()
            raise

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    async def _start_roles(self) -> None:
        settings = self.settings
        config = settings.store_config()
        env = config.env
        self._store_file = env.get("SQLITE_DBNAME")
        # An in-memory store has no I/O that could block: its calls need no thread.
        inline = env["PERSISTENCE_MODULE"] == "eventsourcing.popo"
        io = self._io = StoreThread(settings.store_busy_timeout_s, inline=inline)
        try:
            store = self.store = await io.run(ExecutionStore, env, config.aggregate_cache_size)
        except (sqlite3.DatabaseError, PersistenceError) as error:
            raise StoreUnreadable(self._store_name(), str(error)) from error
        await self.bus.declare(list(TOPICS.values()))
        self.language_list = await self.sandbox.languages()
        self._languages = frozenset(
            n for lang in self.language_list for n in (lang.name, *lang.aliases)
        )
        history = lambda: (e for _, e in store.read_all())  # noqa: E731
        self.coordinator = CoordinatorProcess(
            settings.coordinator, lambda: self._languages, history
        )
        self.saga = SagaOrchestrator(
            store, self.clock, history=history, grace=timedelta(seconds=settings.saga_grace_s)
        )
        worker_id = worker_id_for(settings.data_dir, settings.worker_id)
        self.worker = WorkerProcess(store, self.sandbox, self.clock, io, worker_id)
        self.projection = ProjectionProcess(self.read_model, self.feed)
        self.dead_letters = DeadLetterManager(
            store, self.bus, self.clock, io, settings.dead_letters
        )
        self.replays = ReplayService(store, self.bus, self.clock, io)
        self.admission = Admission(
            store, self.read_model, lambda user: self.coordinator.policy.config.limits_for(user)
        )
        try:
            started = await io.run(self._fold_history, store)
        except (sqlite3.DatabaseError, PersistenceError) as error:
            raise StoreUnreadable(self._store_name(), str(error)) from error
        self.relay = Relay(store, self.bus, io)
        # The store calls these in its thread; what they do belongs on the loop.
        store.listeners.append(lambda events: io.call_soon(self._on_record, events))
        if "relay" in settings.roles:
            offer = self.relay.offer
            store.record_listeners.append(lambda ids, stored: io.call_soon(offer, ids, stored))
        processes: list[Process] = [self.coordinator, self.saga, self.worker, self.projection]
        roles = settings.roles | {p.group for p in self.extra_processes}
        processes += self.extra_processes
        for process in processes:
            if process.group not in roles and not (process is self.worker and "worker" in roles):
                continue
            consumer = Consumer(
                self.bus,
                store,
                process,
                self.clock,
                io,
                max_attempts=settings.consumer_max_attempts,
                dead_letters=self._park,
            )
            self._consumers.append(consumer)
            task = self._spawn(consumer.run(), process.group)
            if process is self.worker:
                self._worker = consumer, task
                self._local_worker = True
        if "relay" in roles:
            self._spawn(self.relay.run(), "relay")
        if "saga" in roles:
            self._spawn(self.saga.run_timer(io, settings.timer_interval_s), "saga-timer")
        if "dead-letters" in roles:
            self._spawn(self.dead_letters.run(), "dead-letters")
        if "replay" in roles:
            self._replay_task = self._spawn(self.replays.run(), "replay")
        # Queued in the store thread before any role's first batch, so it runs first.
        await io.run(self._recover_in_flight, store, roles, started)
        self.started = True

    def _store_name(self) -> str:
        data_dir = self.settings.data_dir
        return str(data_dir / EVENTS_FILE) if data_dir is not None else "in memory"

    def _fold_history(self, store: ExecutionStore) -> list[UUID]:
        """Rebuild every role's state; returns the executions started and not ended."""
        started: dict[UUID, None] = {}
        for position, event in store.read_all():
            self.coordinator.fold(event)
            self.saga.fold(event)
            self.read_model.apply(event, position)
            self.dead_letters.fold(event)
            self.replays.fold(event)
            if isinstance(event, ExecutionStarted):
                started[event.execution_id] = None
            elif isinstance(event, TERMINAL_EVENT_TYPES):
                started.pop(event.execution_id, None)
        return list(started)

    def _recover_in_flight(
        self, store: ExecutionStore, roles: frozenset[str], started: list[UUID]
    ) -> None:
        if "worker" in roles:
            # A run may have started before its saga began: both lists count.
            sagas = [saga.execution_id for saga in self.saga.active(store)]
            self.worker.abandon_lost_runs(dict.fromkeys([*started, *sagas]))
        if "coordinator" in roles:
            uow = UnitOfWork(store, self.clock.now())
            self.coordinator.decide_undecided(uow)
            uow.commit()

    def _lock_data_dir(self) -> None:
        if self.settings.data_dir is not None:
            self._lock = lock_data_dir(self.settings.data_dir)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._crashed)
        self._tasks.append(task)
        return task

    def health(self) -> dict[str, str]:
        """Each role task's state: `running`, `stopped` or `crashed: <error>`."""
        roles: dict[str, str] = {}
        for task in self._tasks:
            if not task.done():
                roles[task.get_name()] = "running"
            elif task.cancelled() or task.exception() is None:
                roles[task.get_name()] = "stopped"
            else:
                roles[task.get_name()] = f"crashed: {task.exception()!r}"
        return roles

    @property
    def healthy(self) -> bool:
        return self.started and all(state == "running" for state in self.health().values())

    def on_recorded(self, listener: Callable[[Sequence[DomainEvent]], None]) -> None:
        """Call `listener` with the events of every write this process makes (after it
        succeeded), on the event loop. Listeners must be quick and must not raise."""
        self._store()
        self._listeners.append(listener)

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical("role %s crashed", task.get_name(), exc_info=task.exception())

    def _on_record(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            # This process's writes are read at once (a request's view is made with its
            # store position, by `submit` or the projection).
            if not isinstance(event, ExecutionRequested):
                self.read_model.apply(event)
            self.feed.notify(event.execution_id)
            if self._local_worker and isinstance(event, SandboxStopRequested):
                # Straight to the worker too (its task follows; stopping twice is harmless):
                # while a stop drains the runs, the worker takes no more tasks, yet a cancel
                # or a time-out must still stop its run.
                self.worker.stop_sandbox(event.sandbox_id)
        for listener in self._listeners:
            listener(events)

    async def _park(self, group: str, message: Message, error: BaseException, n: int) -> None:
        await park(self.bus, group, message, error, n)

    async def stop(self) -> None:
        """Stop every role. The worker takes no new tasks and runs in progress get
        `shutdown_grace_s` to finish (queued work stays queued); runs still going after it
        are abandoned, and the next start reports them lost with their output so far."""
        if self._io is None:
            return
        self.started = False
        if self._worker is not None:
            consumer, task = self._worker
            consumer.stop()
            await asyncio.wait([task], timeout=max(self.settings.shutdown_grace_s, 1.0))
        left = await self.worker.drain(self.settings.shutdown_grace_s)
        if left:
            log.warning("runs abandoned, still running after the shutdown grace: %d", left)
        for consumer in self._consumers:
            consumer.stop()
        self.relay.stop()
        self.saga.stop()
        self.dead_letters.stop()
        self.replays.stop()
        if self._replay_task is not None:
            # Let a replay finish the batch it is publishing, so it records its progress.
            with suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._replay_task), 5.0)
        await self.worker.close()
        await self._close()

    async def _close(self) -> None:
        """End the role tasks, the sandbox and the store thread; release the data dir."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._consumers.clear()
        self._worker, self._local_worker = None, False
        io, store = self._io, self.store
        if io is not None:
            if store is not None and hasattr(self, "relay"):
                await self.relay.track_now()  # a clean stop leaves nothing to republish
            with suppress(Exception):
                await self.sandbox.close()
            await io.close(store.close if store is not None else None)
            self._io = None
        self._unlock()

    async def __aenter__(self) -> Codeexec:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the public API ---------------------------------------------------------------------

    def _store(self) -> ExecutionStore:
        if self.store is None or not self.started:
            raise RuntimeError("the runtime is not started")
        return self.store

    def _thread(self) -> StoreThread:
        self._store()
        assert self._io is not None
        return self._io

    async def in_store(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the store thread, where the roles' state lives (operators'
        reads and commands on dead letters, replays, limits). Bounded like a request:
        raises StoreBusy when the store does not answer in time."""
        return await self._thread().ask(fn, *args)

    async def languages(self) -> Sequence[Language]:
        return self.language_list

    async def submit(
        self,
        user_id: str,
        spec: RunSpec,
        *,
        priority: int = 0,
        idempotency_key: str | None = None,
        correlation_id: UUID | None = None,
    ) -> ExecutionView:
        """Record the request (durably, before returning) and return its view. With an
        idempotency key, a repeat returns the original execution; the key reused for a
        different request raises IdempotencyKeyReused. Over the user's rate limit or
        storage quota it raises AdmissionRefused, keeping only the request's digest.
        StoreBusy: nothing was recorded."""
        self._store()
        if not user_id:
            raise ValueError("user_id must not be empty")
        if spec.language not in self._languages:
            raise UnknownLanguage(f"language {spec.language!r} is not available")
        self._check_version(spec)
        digest = request_digest(spec, priority)
        if idempotency_key is not None:
            execution_id = uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{user_id}\0{idempotency_key}")
        else:
            execution_id = uuid.uuid4()
        now = self.clock.now()
        pending = self._submitting.setdefault(user_id, [])
        refusal = self.admission.refusal(user_id, spec, now, pending)
        cause = Cause(now, correlation_id or execution_id, None)
        execution = Execution.request(
            execution_id, user_id, spec, cause, priority, idempotency_key, digest
        )
        mine = RecentSubmission(now, spec.payload_bytes, True)
        pending.append(mine)
        try:
            # One store call: a concurrent repeat of the key cannot slip in between.
            recorded = await self._ask(self._record_request, execution, refusal, now)
        finally:
            pending.remove(mine)
            if not pending:
                del self._submitting[user_id]
        if recorded is None:
            return await self._catch_up(execution_id)  # a repeat: the original execution
        for event, position in recorded:
            self.read_model.apply(event, position)
        view = self.read_model.get(execution_id)
        assert view is not None
        return view

    def _record_request(
        self, execution: Execution, refusal: Refusal | None, now: datetime
    ) -> Sequence[tuple[DomainEvent, int]] | None:
        """In the store thread: None for a repeat of an idempotency key; else the refusal
        recorded and raised, or the request recorded (its events and their positions)."""
        store = self._store()
        key, digest = execution.idempotency_key, execution.request_digest
        if key is not None:
            existing = store.load(Execution, execution.id)
            if existing is not None:
                if existing.request_digest != digest:
                    raise IdempotencyKeyReused(key, existing.id)
                return None
        if refusal is not None:
            assert execution.spec is not None
            spec, priority = execution.spec, execution.priority
            raise self.admission.refuse(refusal, execution.user_id, spec, priority, digest, now)
        events = execution.collect_events()
        positions = store.record(events, [execution])
        return tuple(zip(events, positions, strict=True))

    def _check_version(self, spec: RunSpec) -> None:
        """A version the language does not have is the user's mistake: refuse it here,
        before anything is recorded, rather than let the run fail inside the sandbox."""
        if spec.version is None:
            return
        named = [x for x in self.language_list if x.named(spec.language)]
        if not any(x.offers(spec.version) for x in named):
            have = ", ".join(x.version for x in named)
            raise UnknownVersion(
                f"{spec.language} {spec.version!r} is not available (have: {have})"
            )

    def get(self, execution_id: UUID, user_id: str | None = None) -> ExecutionView:
        """The execution's view; NotFound if missing or owned by another user."""
        view = self.read_model.get(execution_id)
        if view is None or (user_id is not None and view.user_id != user_id):
            raise NotFound(f"execution {execution_id} not found")
        return view

    def list(self, query: ExecutionQuery) -> Page:
        return self.read_model.list(query)

    def list_all(self) -> Sequence[ExecutionView]:
        """Every execution, oldest first (admin tooling, tests)."""
        return self.read_model.list_all()

    async def cancel(self, execution_id: UUID, user_id: str | None = None) -> ExecutionView:
        """Ask to cancel; queued runs are dropped, running ones are killed."""
        view = self.get(execution_id, user_id)
        for event in await self._ask(self._request_cancel, execution_id, user_id or "admin"):
            self.read_model.apply(event)
        return self.read_model.get(execution_id) or view

    def _request_cancel(self, execution_id: UUID, requested_by: str) -> Sequence[DomainEvent]:
        for _ in range(5):
            uow = UnitOfWork(self._store(), self.clock.now())
            execution = uow.get(Execution, execution_id)
            assert execution is not None
            cause = Cause(uow.now, execution.correlation_id, None)
            if not execution.request_cancel(cause, requested_by):
                break
            try:
                return uow.commit()
            except StoreBusy:
                raise
            except Exception:
                log.info("cancel of %s conflicted; retrying", execution_id)
        return []

    async def events(
        self, execution_id: UUID, after_version: int = 0, *, follow: bool = True
    ) -> AsyncIterator[DomainEvent]:
        """The execution's events in order, then live ones until its terminal event. They are
        read from the store a page at a time: a slow reader holds one page, not the history."""
        store = self._store()
        io = self._thread()
        version = after_version
        terminal = False
        while True:
            signal = self.feed.watch(execution_id)
            try:
                while True:
                    page = await io.run(store.events_of, execution_id, version, EVENTS_PAGE)
                    for event in page:
                        version = event.aggregate_version
                        terminal = terminal or isinstance(event, TERMINAL_EVENT_TYPES)
                        yield event
                    if len(page) < EVENTS_PAGE:
                        break
                if terminal or not follow:
                    return
                # Nothing new: started at or past the end, or a missing execution.
                if version == after_version and await io.run(self._ended_or_missing, execution_id):
                    return
                with suppress(TimeoutError):
                    async with asyncio.timeout(1.0):  # wait_for may swallow a cancel (3.11)
                        await signal.wait()
            finally:
                self.feed.unwatch(execution_id, signal)

    def _ended_or_missing(self, execution_id: UUID) -> bool:
        execution = self._store().load(Execution, execution_id)
        return execution is None or execution.is_terminal

    async def last_version(self, execution_id: UUID) -> int:
        """The version of the execution's last recorded event; 0 if it has none."""
        return await self._ask(self._last_version, execution_id)

    def _last_version(self, execution_id: UUID) -> int:
        execution = self._store().load(Execution, execution_id)
        return execution.version if execution is not None else 0

    async def wait(self, execution_id: UUID, timeout: float | None = None) -> ExecutionView:
        """Wait until the execution reaches its terminal state (or the timeout passes).
        This process's writes reach the view at once; what other processes record is
        looked up in the store when nothing was heard for a second."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        heard = True
        while True:
            signal = self.feed.watch(execution_id)
            try:
                view = self.read_model.get(execution_id)
                if view is None or (not view.terminal and not heard):
                    view = await self._catch_up(execution_id, quiet=view is not None)
                if view.terminal:
                    return view
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return await self._catch_up(execution_id, quiet=True)
                heard = False
                with suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining or 1.0, 1.0)):  # honours cancel
                        await signal.wait()
                    heard = True
            finally:
                self.feed.unwatch(execution_id, signal)

    async def _catch_up(self, execution_id: UUID, *, quiet: bool = False) -> ExecutionView:
        """Fold recorded events the projection has not applied yet (read your writes).
        `quiet`: a busy store leaves the view as it is instead of raising StoreBusy."""
        view = self.read_model.get(execution_id)
        seen = view.version_seen if view else 0
        try:
            events = await self._ask(self._store().events_of, execution_id, seen)
        except StoreBusy:
            if not quiet or view is None:
                raise
            events = []
        for event in events:
            self.read_model.apply(event)
        view = self.read_model.get(execution_id)
        if view is None:
            raise NotFound(f"execution {execution_id} not found")
        return view

    async def _ask(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._thread().ask(fn, *args)

    def store_bytes(self) -> int:
        """What the event store occupies: its SQLite files (with -wal and -shm), or in
        memory the bytes of the events this process recorded (all there is)."""
        store = self._store()
        if self.settings.data_dir is None:
            return store.recorded_bytes
        if self._store_file is None:
            return store.recorded_bytes  # another module's store (PostgreSQL...): ours only
        return sqlite_store.database_bytes(self._store_file)

    async def queue_status(self) -> QueueStatus:
        return await self.in_store(self.coordinator.policy.status)

    async def backlog(self) -> dict[str, int]:
        """Consumer lag per group, as the bus reports it."""
        return dict(await self.bus.lag())
