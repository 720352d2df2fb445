"""The embedded runtime: every role in one process, and the public Python API."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.adapters.memory_read_model import InMemoryExecutionReadModel
from codeexec.adapters.sqlite_store import database_bytes
from codeexec.domain.aggregate import Cause
from codeexec.domain.coordinator import CoordinatorConfig, QueueStatus
from codeexec.domain.dead_letter import DeadLetterConfig
from codeexec.domain.events import TERMINAL_EVENT_TYPES, DomainEvent
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
from codeexec.service.unit_of_work import UnitOfWork
from codeexec.service.worker import WorkerProcess

log = logging.getLogger(__name__)

IDEMPOTENCY_NAMESPACE = UUID("0b7c8f0e-6a3b-4c52-8a4e-2f4a5d7e9c11")
EVENTS_PAGE = 8
"""Events read from the store at a time when following an execution."""


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


@dataclass
class Settings:
    data_dir: Path | None = None
    """Where the SQLite event store lives; None keeps everything in memory."""
    coordinator: CoordinatorConfig = field(default_factory=CoordinatorConfig)
    saga_grace_s: float = 30.0
    worker_id: str = "worker"
    timer_interval_s: float = 0.25
    consumer_max_attempts: int = 3
    dead_letters: DeadLetterConfig = field(default_factory=DeadLetterConfig)
    roles: frozenset[str] = ALL_ROLES
    """Which roles run in this process (all of them when embedded)."""

    sqlite_synchronous: str = "normal"
    """`normal` (WAL): nothing is lost when a process dies; `full`: also survives power loss."""

    def store_env(self) -> dict[str, str]:
        if self.data_dir is None:
            return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "codeexec.adapters.sqlite_store",
            "SQLITE_DBNAME": str(self.data_dir / "events.sqlite3"),
            "SQLITE_LOCK_TIMEOUT": "10",
            "SQLITE_SYNCHRONOUS": self.sqlite_synchronous,
        }


def lock_data_dir(data_dir: Path) -> IO[str]:
    """One embedded runtime per data dir (its roles assume they are alone): take the
    dir's lock, held until the returned file is closed. Raises DataDirInUse."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "runtime.lock", "a+")  # noqa: SIM115 (held until stop)
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
    """

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
        self._tasks: list[asyncio.Task[None]] = []
        self._consumers: list[Consumer] = []
        self._languages: frozenset[str] = frozenset()
        self.language_list: Sequence[Language] = ()
        self.extra_processes = list(processes)
        self.started = False
        self._replay_task: asyncio.Task[None] | None = None
        self._lock: IO[str] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._lock_data_dir()
        try:
            await self._start_roles()
        except BaseException:
            self._unlock()
            raise

    def _unlock(self) -> None:
        self._unlock()

    async def _start_roles(self) -> None:
        settings = self.settings
        store = self.store = ExecutionStore(settings.store_env(), cache_size=100_000)
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
        self.worker = WorkerProcess(store, self.sandbox, self.clock, settings.worker_id)
        self.projection = ProjectionProcess(self.read_model, self.feed)
        self.dead_letters = DeadLetterManager(store, self.bus, self.clock, settings.dead_letters)
        self.replays = ReplayService(store, self.bus, self.clock)
        self.admission = Admission(
            store, self.read_model, lambda user: self.coordinator.policy.config.limits_for(user)
        )
        for position, event in store.read_all():
            self.coordinator.fold(event)
            self.saga.fold(event)
            self.read_model.apply(event, position)
            self.dead_letters.fold(event)
            self.replays.fold(event)
        self.relay = Relay(store, self.bus)
        store.listeners.append(self._on_record)
        if "relay" in settings.roles:
            store.record_listeners.append(self.relay.offer)
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
                max_attempts=settings.consumer_max_attempts,
                dead_letters=self._park,
            )
            self._consumers.append(consumer)
            self._spawn(consumer.run(), process.group)
        if "relay" in roles:
            self._spawn(self.relay.run(), "relay")
        if "saga" in roles:
            self._spawn(self.saga.run_timer(settings.timer_interval_s), "saga-timer")
        if "dead-letters" in roles:
            self._spawn(self.dead_letters.run(), "dead-letters")
        if "replay" in roles:
            self._replay_task = self._spawn(self.replays.run(), "replay")
        if "worker" in roles:
            running = [saga.execution_id for saga in self.saga.active(store)]
            self.worker.abandon_lost_runs(running)
        if "coordinator" in roles:
            uow = UnitOfWork(store, self.clock.now())
            self.coordinator.decide_undecided(uow)
            uow.commit()
        self.started = True

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
        succeeded). Listeners must be quick and must not raise."""
        self._store().listeners.append(listener)

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical("role %s crashed", task.get_name(), exc_info=task.exception())

    def _on_record(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            self.feed.notify(event.execution_id)

    async def _park(self, group: str, message: Message, error: BaseException, n: int) -> None:
        await park(self.bus, group, message, error, n)

    async def stop(self) -> None:
        """Stop every role. Work in flight is picked up by the next start."""
        self.started = False
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
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._consumers.clear()
        await self.sandbox.close()
        if self.store is not None:
            self.store.close()
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

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
        storage quota it raises AdmissionRefused, keeping only the request's digest."""
        store = self._store()
        if not user_id:
            raise ValueError("user_id must not be empty")
        if spec.language not in self._languages:
            raise UnknownLanguage(f"language {spec.language!r} is not available")
        self._check_version(spec)
        digest = request_digest(spec, priority)
        if idempotency_key is not None:
            execution_id = uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{user_id}\0{idempotency_key}")
            existing = store.load(Execution, execution_id)
            if existing is not None:
                if existing.request_digest != digest:
                    raise IdempotencyKeyReused(idempotency_key, existing.id)
                return self._catch_up(existing.id)
        else:
            execution_id = uuid.uuid4()
        self.admission.check(user_id, spec, priority, digest, self.clock.now())
        cause = Cause(self.clock.now(), correlation_id or execution_id, None)
        execution = Execution.request(
            execution_id, user_id, spec, cause, priority, idempotency_key, digest
        )
        events = execution.collect_events()
        positions = store.record(events, [execution])
        for event, position in zip(events, positions, strict=True):
            self.read_model.apply(event, position)
        return self._catch_up(execution.id)

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
        for _ in range(5):
            uow = UnitOfWork(self._store(), self.clock.now())
            execution = uow.get(Execution, execution_id)
            assert execution is not None
            cause = Cause(uow.now, execution.correlation_id, None)
            if not execution.request_cancel(cause, user_id or "admin"):
                break
            try:
                for event in uow.commit():
                    self.read_model.apply(event)
                break
            except Exception:
                log.info("cancel of %s conflicted; retrying", execution_id)
        return self.read_model.get(execution_id) or view

    async def events(
        self, execution_id: UUID, after_version: int = 0, *, follow: bool = True
    ) -> AsyncIterator[DomainEvent]:
        """The execution's events in order, then live ones until its terminal event. They are
        read from the store a page at a time: a slow reader holds one page, not the history."""
        store = self._store()
        version = after_version
        terminal = False
        while True:
            signal = self.feed.watch(execution_id)
            try:
                while True:
                    page = store.events_of(execution_id, version, limit=EVENTS_PAGE)
                    for event in page:
                        version = event.aggregate_version
                        terminal = terminal or isinstance(event, TERMINAL_EVENT_TYPES)
                        yield event
                    if len(page) < EVENTS_PAGE:
                        break
                if terminal or not follow:
                    return
                if version == after_version:
                    # Nothing new: started at or past the end, or a missing execution.
                    execution = store.load(Execution, execution_id)
                    if execution is None or execution.is_terminal:
                        return
                with suppress(TimeoutError):
                    async with asyncio.timeout(1.0):  # wait_for may swallow a cancel (3.11)
                        await signal.wait()
            finally:
                self.feed.unwatch(execution_id, signal)

    def last_version(self, execution_id: UUID) -> int:
        """The version of the execution's last recorded event; 0 if it has none."""
        execution = self._store().load(Execution, execution_id)
        return execution.version if execution is not None else 0

    async def wait(self, execution_id: UUID, timeout: float | None = None) -> ExecutionView:
        """Wait until the execution reaches its terminal state (or the timeout passes)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            signal = self.feed.watch(execution_id)
            try:
                view = self.read_model.get(execution_id)
                if view is None or not view.terminal:
                    # The store knows before the projection does: catch up from it.
                    execution = self._store().load(Execution, execution_id)
                    if view is None or (execution is not None and execution.is_terminal):
                        view = self._catch_up(execution_id)
                if view.terminal:
                    return view
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return self._catch_up(execution_id)
                with suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining or 1.0, 1.0)):  # honours cancel
                        await signal.wait()
            finally:
                self.feed.unwatch(execution_id, signal)

    def _catch_up(self, execution_id: UUID) -> ExecutionView:
        """Fold recorded events the projection has not applied yet (read your writes)."""
        view = self.read_model.get(execution_id)
        for event in self._store().events_of(execution_id, view.version_seen if view else 0):
            self.read_model.apply(event)
        view = self.read_model.get(execution_id)
        if view is None:
            raise NotFound(f"execution {execution_id} not found")
        return view

    def store_bytes(self) -> int:
        """What the event store occupies: its SQLite files (with -wal and -shm), or in
        memory the bytes of the events this process recorded (all there is)."""
        store = self._store()
        if self.settings.data_dir is None:
            return store.recorded_bytes
        return database_bytes(self.settings.store_env()["SQLITE_DBNAME"])

    def queue_status(self) -> QueueStatus:
        return self.coordinator.policy.status()

    async def backlog(self) -> dict[str, int]:
        """Consumer lag per group, as the bus reports it."""
        return dict(await self.bus.lag())
