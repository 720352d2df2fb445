"""Codeexec: the public Python API, a thin facade over a role runner and a command service.

Embedded (the default), every role runs in this process; `Settings.roles` chooses fewer,
down to none (an API-only process: commands and queries, the roles run elsewhere on the
same store and bus)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from typing import IO, Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import OperationalError, PersistenceError

from codeexec.adapters import sqlite_store
from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.commands import (
    IDEMPOTENCY_NAMESPACE,
    CommandService,
    IdempotencyKeyReused,
    NotFound,
)
from codeexec.domain.coordinator import QueueStatus
from codeexec.domain.events import TERMINAL_EVENT_TYPES, DomainEvent
from codeexec.domain.model import RunSpec
from codeexec.domain.routing import TOPICS
from codeexec.operations import Operations
from codeexec.ports.bus import EventBus
from codeexec.ports.clock import Clock, SystemClock
from codeexec.ports.execution_queries import ExecutionQueries
from codeexec.ports.read_model import ExecutionQuery, ExecutionReadModel, ExecutionView, Page
from codeexec.ports.sandbox import Language, Sandbox, UnknownLanguage, UnknownVersion
from codeexec.roles import RoleHealth, RolePorts
from codeexec.runner import RoleRunner, check_roles, retentions
from codeexec.service.admission import Admission
from codeexec.service.consumer import Process
from codeexec.service.coordinator_process import CoordinatorProcess
from codeexec.service.dead_letters import DeadLetterManager
from codeexec.service.live_feed import LiveFeed
from codeexec.service.projections import ExecutionFeed
from codeexec.service.replays import ReplayService
from codeexec.service.saga_orchestrator import SagaOrchestrator
from codeexec.service.snapshots import Shadow, SnapshotStore
from codeexec.service.store import ExecutionStore
from codeexec.service.store_thread import StoreThread
from codeexec.service.worker_identity import worker_id_for
from codeexec.settings import ALL_ROLES, Settings
from codeexec.store_open import (
    DataDirInUse,
    StoreUnreadable,
    check_store,
    lock_data_dir,
)

__all__ = [
    "ALL_ROLES",
    "IDEMPOTENCY_NAMESPACE",
    "Codeexec",
    "DataDirInUse",
    "IdempotencyKeyReused",
    "NotFound",
    "Settings",
    "StoreUnreadable",
    "check_store",
    "lock_data_dir",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        guarantees as the built-in roles: tracked, retried, dead-lettered. Without a
        `read_model`, the store's own is used (a table beside a SQLite or PostgreSQL store)."""
        self.settings = settings or Settings()
        check_roles(self.settings.roles)
        self.clock: Clock = clock or SystemClock()
        self.sandbox = sandbox or default_sandbox()
        self.bus = bus or InMemoryEventBus()
        self._given_read_model = read_model
        self.read_model: ExecutionReadModel  # set on start: the given one or the store's
        self.queries: ExecutionQueries  # the read model's reads, awaited (set on start)
        self.feed = ExecutionFeed()
        self.store: ExecutionStore | None = None
        self.extra_processes = list(processes)
        self.language_list: Sequence[Language] = ()
        self._languages: frozenset[str] = frozenset()
        self.started = False
        self._io: StoreThread | None = None
        self._store_file: str | None = None  # the SQLite event store's file, if it is one
        self._store_described = "the in-memory event store"  # as configured, once opened
        self._lock: IO[str] | None = None
        self._runner: RoleRunner | None = None
        self._live: LiveFeed | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[Callable[[Sequence[DomainEvent]], None]] = []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Raises DataDirInUse, StoreUnreadable (a corrupt store), or what a role's start
        raised; nothing is left running or locked then."""
        if self.settings.data_dir is not None:
            self._lock = lock_data_dir(self.settings.data_dir)
        try:
            await self._open()
            assert self._runner is not None
            await self._runner.start()
        except OperationalError:
            await self._close()
            raise  # the store did not answer (down, unreachable, busy): not unreadable
        except (sqlite3.DatabaseError, PersistenceError) as error:
            await self._close()
            raise StoreUnreadable(self._store_described, str(error)) from error
        except BaseException:
            await self._close()
            raise
        self.started = True

    async def _open(self) -> None:
        settings = self.settings
        config = settings.store_config()
        self._store_file = config.env.get("SQLITE_DBNAME")
        self._store_described = config.describe()
        # An in-memory store has no I/O that could block: its calls need no thread.
        inline = config.env["PERSISTENCE_MODULE"] == "eventsourcing.popo"
        io = self._io = StoreThread(settings.store_busy_timeout_s, inline=inline)
        store = self.store = await io.run(ExecutionStore, config.env, config.aggregate_cache_size)
        given = self._given_read_model
        read_model: ExecutionReadModel = (
            given if given is not None else await io.run(config.read_model)
        )
        self.read_model = read_model
        self.queries = config.queries(read_model)
        snapshots = await io.run(SnapshotStore, store)
        await self.bus.declare(list(TOPICS.values()))
        self.language_list = await self.sandbox.languages()
        self._languages = frozenset(
            n for lang in self.language_list for n in (lang.name, *lang.aliases)
        )
        # The one writer: the shadow is fed what this process records, not the log read back.
        listen = config.single_writer
        shadow = Shadow(store, snapshots, retentions(settings), settings.snapshot_every, listen)
        ports = RolePorts(
            settings=settings,
            store=store,
            io=io,
            bus=self.bus,
            clock=self.clock,
            sandbox=self.sandbox,
            read_model=read_model,
            feed=self.feed,
            shadow=shadow,
            languages=lambda: self._languages,
            worker_id=worker_id_for(settings.data_dir, settings.worker_id),
        )
        self.dead_letters = DeadLetterManager(
            store, self.bus, self.clock, io, settings.dead_letters
        )
        self.replays = ReplayService(store, self.bus, self.clock, io)
        self._runner = RoleRunner(ports, self.dead_letters, self.replays, self.extra_processes)
        self.operations = Operations(
            ports, self._runner, self.dead_letters, self.replays, self.queries
        )
        admission = Admission(store, self.queries, self.operations.limits_for)
        self.commands = CommandService(
            store, io, self.clock, read_model, self.queries, self.feed, admission
        )
        # The store calls this in its thread; what it does belongs on the loop.
        store.listeners.append(lambda events: io.call_soon(self._on_record, events))
        await self.operations.start()
        if settings.live_feed and ("projections" not in settings.roles or self.bus.durable):
            # The projector wakes followers where it runs, if it sees every execution; on a
            # bus other processes share (several `serve`s on one broker), it may hold only
            # some partitions of its group. Elsewhere and there, the bus's tail wakes them.
            self._live = LiveFeed(self.bus, self.feed)
            self._tasks.append(asyncio.get_running_loop().create_task(self._live.run()))

    def _on_record(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            # This process's writes wake at once.
            self.feed.notify(event.execution_id, isinstance(event, TERMINAL_EVENT_TYPES))
        for listener in self._listeners:
            listener(events)

    async def stop(self) -> None:
        """Stop every role. The worker takes no new tasks and runs in progress get
        `shutdown_grace_s` to finish (queued work stays queued); runs still going after it
        are abandoned, and the next start reports them lost with their output so far."""
        if self._io is None:
            return
        self.started = False
        await self._close()

    async def _close(self) -> None:
        """Stop the roles, the sandbox and the store thread; release the data dir."""
        if self._runner is not None:
            await self._runner.stop()
            self._runner = None
        if self._live is not None:
            self._live.stop()
        with suppress(Exception):
            await self.operations.stop()
        queries: ExecutionQueries | None = getattr(self, "queries", None)
        if queries is not None:
            with suppress(Exception):
                await queries.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        io, store = self._io, self.store
        if io is not None:
            with suppress(Exception):
                await self.sandbox.close()
            await io.close(store.close if store is not None else None)
            self._io = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    async def __aenter__(self) -> Codeexec:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- health ---------------------------------------------------------------------------

    def health(self) -> dict[str, RoleHealth]:
        """Each role's health (live, ready, detail); `str()` of one is `running`, `starting`,
        `stopped` or `crashed: <error>`."""
        return self._runner.health() if self._runner is not None else {}

    @property
    def healthy(self) -> bool:
        return self.started and all(h.live and h.ready for h in self.health().values())

    def on_recorded(self, listener: Callable[[Sequence[DomainEvent]], None]) -> None:
        """Call `listener` with the events of every write this process makes (after it
        succeeded), on the event loop. Listeners must be quick and must not raise."""
        self._commands()
        self._listeners.append(listener)

    # -- the public API ---------------------------------------------------------------------

    def _commands(self) -> CommandService:
        if not self.started:
            raise RuntimeError("the runtime is not started")
        return self.commands

    async def in_store(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the store thread (operators' reads and commands). Bounded
        like a request: raises StoreBusy when the store does not answer in time."""
        return await self._commands().ask(fn, *args)

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
        commands = self._commands()
        if not user_id:
            raise ValueError("user_id must not be empty")
        if spec.language not in self._languages:
            raise UnknownLanguage(f"language {spec.language!r} is not available")
        self._check_version(spec)
        return await commands.submit(
            user_id,
            spec,
            priority=priority,
            idempotency_key=idempotency_key,
            correlation_id=correlation_id,
        )

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
        """The execution's view; NotFound if missing or owned by another user. It reads the
        read model in place: on the event loop, `find` is the one to call."""
        return _owned(self._commands().view(execution_id), execution_id, user_id)

    async def find(self, execution_id: UUID, user_id: str | None = None) -> ExecutionView:
        """`get` without blocking the loop, and where the read model does not show the
        execution yet (the projections lag, or this process restarted and never saw it), the
        view folded from the store: an accepted execution is never answered as missing.
        NotFound if it has no events or belongs to another user; StoreBusy if the store
        does not answer."""
        commands = self._commands()
        view = await commands.find_view(execution_id)
        if view is None:
            view = await commands.fold_from_store(execution_id, None)
        return _owned(view, execution_id, user_id)

    def list(self, query: ExecutionQuery) -> Page:
        """A page of the listing, read in place (on the event loop, `query` is the one)."""
        return self.read_model.list(query)

    async def query(self, query: ExecutionQuery) -> Page:
        """A page of the listing, newest first; `next_cursor` continues it."""
        self._commands()
        return await self.queries.list(query)

    def list_all(self) -> Sequence[ExecutionView]:
        """Every execution, oldest first (admin tooling, tests)."""
        return self.read_model.list_all()

    async def cancel(self, execution_id: UUID, user_id: str | None = None) -> ExecutionView:
        """Ask to cancel; queued runs are dropped, running ones are killed."""
        await self.find(execution_id, user_id)
        return await self._commands().cancel(execution_id, user_id or "admin")

    def events(
        self, execution_id: UUID, after_version: int = 0, *, follow: bool = True
    ) -> AsyncIterator[DomainEvent]:
        """The execution's events in order, then live ones until its terminal event. They are
        read from the store a page at a time: a slow reader holds one page, not the history."""
        return self._commands().events(execution_id, after_version, follow=follow)

    async def last_version(self, execution_id: UUID) -> int:
        """The version of the execution's last recorded event; 0 if it has none."""
        return await self._commands().last_version(execution_id)

    async def wait(self, execution_id: UUID, timeout: float | None = None) -> ExecutionView:
        """Wait until the execution reaches its terminal state (or the timeout passes).
        Events wake it from this process's writes and the bus; the store is read when
        nothing was heard for a second."""
        return await self._commands().wait(execution_id, timeout)

    def live_feed_wakeups(self) -> int | None:
        """Events from the bus that woke this process's followers (event streams, waits):
        None where no live feed runs (the projector wakes them where it runs)."""
        return None if self._live is None else self._live.woken

    def store_bytes(self) -> int:
        """What the event store occupies: its SQLite files (with -wal and -shm), or in
        memory the bytes of the events this process recorded (all there is)."""
        store = self._commands().store
        if self.settings.data_dir is None or self._store_file is None:
            return store.recorded_bytes  # in memory, or another module's store: ours only
        return sqlite_store.database_bytes(self._store_file)

    async def queue_status(self) -> QueueStatus:
        return await self.operations.queue_status()

    async def backlog(self) -> dict[str, int]:
        """Consumer lag per group, as the bus reports it."""
        return dict(await self.bus.lag())

    # -- the roles running here (diagnostics and tests) -------------------------------------

    @property
    def coordinator(self) -> CoordinatorProcess:
        """This process's coordinator (AttributeError when the role runs elsewhere)."""
        role = self._runner.role("coordinator") if self._runner else None
        return role.coordinator  # type: ignore[union-attr, no-any-return]

    @property
    def saga(self) -> SagaOrchestrator:
        role = self._runner.role("saga") if self._runner else None
        return role.saga  # type: ignore[union-attr, no-any-return]


def _owned(view: ExecutionView | None, execution_id: UUID, user_id: str | None) -> ExecutionView:
    """The view, if there is one and `user_id` (None: an admin) may see it."""
    if view is None or (user_id is not None and view.user_id != user_id):
        raise NotFound(f"execution {execution_id} not found")
    return view
