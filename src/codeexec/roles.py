"""Roles: the units a process runs (coordinator, saga, worker, ...) and the ports they get.

A role rebuilds only its own state on `start` (from its snapshot and the log after it, or
its tracked position), then begins its work as tasks on the event loop; `stop` ends that
work cleanly; `health` says whether it is alive and ready. Which roles run in a process is
a setting (`Settings.roles`): a worker-only process is a configuration, not a code change."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from codeexec.ports.bus import EventBus, Message
from codeexec.ports.clock import Clock
from codeexec.ports.read_model import ExecutionReadModel
from codeexec.ports.sandbox import Sandbox
from codeexec.service.consumer import Consumer, Process
from codeexec.service.dead_letters import park
from codeexec.service.projections import ExecutionFeed
from codeexec.service.snapshots import Shadow
from codeexec.service.store import ExecutionStore
from codeexec.service.store_thread import StoreThread
from codeexec.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoleHealth:
    live: bool  # False: it crashed (restarting the process would help)
    ready: bool  # it does its work now
    detail: str = "running"

    def __str__(self) -> str:
        return self.detail


class Role(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> RoleHealth: ...


@dataclass
class RolePorts:
    """What roles run on; injected by whoever builds the runner (the facade, a container)."""

    settings: Settings
    store: ExecutionStore
    io: StoreThread
    bus: EventBus
    clock: Clock
    sandbox: Sandbox
    read_model: ExecutionReadModel
    feed: ExecutionFeed
    shadow: Shadow  # retentions of the stateful roles this process runs
    languages: Callable[[], frozenset[str]]
    worker_id: str

    def consumer(self, process: Process) -> Consumer:
        async def parked(group: str, message: Message, error: BaseException, n: int) -> None:
            await park(self.bus, group, message, error, n)

        return Consumer(
            self.bus,
            self.store,
            process,
            self.clock,
            self.io,
            max_attempts=self.settings.consumer_max_attempts,
            dead_letters=parked,
        )


class TaskRole:
    """A role whose work is a few tasks: healthy while they all run."""

    name = ""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []
        self.started = False

    def spawn(self, coro: Coroutine[Any, Any, None], suffix: str = "") -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=self.name + suffix)
        task.add_done_callback(_report_crash)
        self.tasks.append(task)
        return task

    def health(self) -> RoleHealth:
        if not self.started:
            return RoleHealth(True, False, "starting")
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                return RoleHealth(False, False, f"crashed: {task.exception()!r}")
        if any(task.done() for task in self.tasks):
            return RoleHealth(True, False, "stopped")
        return RoleHealth(True, True, "running")

    async def cancel_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except BaseException:  # a crash was logged when it happened
                pass
        self.tasks.clear()


class ConsumerRole(TaskRole):
    """A process (event handlers) on its consumer group: tracked, retried, dead-lettered."""

    def __init__(self, ports: RolePorts, process: Process, name: str | None = None) -> None:
        super().__init__()
        self.ports, self.process = ports, process
        self.name = name or process.group
        self.consumer: Consumer | None = None

    async def start(self) -> None:
        self.consumer = self.ports.consumer(self.process)
        self.spawn(self.consumer.run())
        self.started = True

    async def stop(self) -> None:
        if self.consumer is not None:
            self.consumer.stop()
        await self.cancel_tasks()


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("role %s crashed", task.get_name(), exc_info=task.exception())
