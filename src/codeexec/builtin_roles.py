"""The seven built-in roles, each rebuilding only its own state before it starts work.

coordinator, saga and worker start from their retention (snapshot plus the log after it,
codeexec.service.snapshots); projections from the read model's own tracked positions
(`backfill`, then the bus); relay from its tracked position; dead-letters and replay from
their indexes. None folds the whole history."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import suppress
from datetime import timedelta

from eventsourcing.persistence import Tracking

from codeexec.domain.events import DomainEvent, ExecutionStarted, SandboxStopRequested
from codeexec.domain.routing import EXECUTION_EVENTS, TOPICS
from codeexec.ports.bus import H_REPLAY, H_TYPE
from codeexec.roles import ConsumerRole, Role, RolePorts, TaskRole
from codeexec.service.consumer import decode
from codeexec.service.coordinator_process import CoordinatorProcess
from codeexec.service.dead_letters import DeadLetterManager
from codeexec.service.limits import latest_change
from codeexec.service.read_model_projector import BACKFILL, ReadModelProjector, backfill
from codeexec.service.relay import Relay
from codeexec.service.replays import ReplayService
from codeexec.service.saga_orchestrator import SagaOrchestrator
from codeexec.service.store import StoreWatch
from codeexec.service.unit_of_work import UnitOfWork
from codeexec.service.worker import WorkerProcess

REPLAY_STOP_WAIT_S = 5.0
STOP_TAIL_LATENCY_S = 0.25


def _retained(ports: RolePorts, name: str) -> Iterator[DomainEvent]:
    """The role's retained events, brought up to the end of the log (store thread)."""
    ports.shadow.advance()
    return (event for _, event in ports.shadow[name].events())


async def _finish(role: TaskRole, wait_s: float = 0.0) -> None:
    """Let the tasks end on their own for `wait_s` (a batch in hand is finished), then
    cancel them: every role's effects are recorded with their tracking, so a cut batch is
    done again on the next start, never twice."""
    if role.tasks and wait_s > 0:
        await asyncio.wait(role.tasks, timeout=wait_s)
    await role.cancel_tasks()


class CoordinatorRole(ConsumerRole):
    def __init__(self, ports: RolePorts) -> None:
        history = lambda: _retained(ports, "coordinator")  # noqa: E731
        self.coordinator = CoordinatorProcess(
            ports.settings.coordinator,
            ports.languages,
            history,
            lambda: latest_change(ports.store),
        )
        super().__init__(ports, self.coordinator, "coordinator")

    async def start(self) -> None:
        await self.ports.io.run(self._rebuild)
        await super().start()

    def _rebuild(self) -> None:
        self.coordinator.recover()
        # Requests recorded while no coordinator ran (or before it crashed) are decided now.
        uow = UnitOfWork(self.ports.store, self.ports.clock.now())
        self.coordinator.decide_undecided(uow)
        uow.commit()

    async def stop(self) -> None:
        if self.consumer is not None:
            self.consumer.stop()
        await _finish(self)


class SagaRole(ConsumerRole):
    def __init__(self, ports: RolePorts) -> None:
        grace = timedelta(seconds=ports.settings.saga_grace_s)
        history = lambda: _retained(ports, "saga")  # noqa: E731
        self.saga = SagaOrchestrator(ports.store, ports.clock, grace=grace, history=history)
        super().__init__(ports, self.saga, "saga")

    async def start(self) -> None:
        await self.ports.io.run(self.saga.recover)
        await super().start()
        self.spawn(
            self.saga.run_timer(self.ports.io, self.ports.settings.timer_interval_s), "-timer"
        )

    async def stop(self) -> None:
        self.saga.stop()
        if self.consumer is not None:
            self.consumer.stop()
        await _finish(self)


class WorkerRole(ConsumerRole):
    def __init__(self, ports: RolePorts) -> None:
        self.worker = WorkerProcess(
            ports.store, ports.sandbox, ports.clock, ports.io, ports.worker_id
        )
        super().__init__(ports, self.worker, "worker")
        self._stops: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.ports.sandbox.prepare()  # here, not in every process that lists languages
        await self.ports.io.run(self._report_lost_runs)
        self.ports.store.listeners.append(self._recorded)
        await super().start()
        self._stops = self.spawn(self._follow_stops(), "-stops")

    async def _follow_stops(self) -> None:
        """Stops recorded anywhere reach the run wherever it is: a stop's task goes to the
        worker that owns its partition now, which after a rebalance may not be the one
        running it; every worker also watches the audit log for stops of its own runs."""
        try:
            # A stop's task reaches the worker running it but after a rebalance: this is the
            # fallback, and may lag a little (a slower tail costs the broker less).
            tail = await self.ports.bus.tail((EXECUTION_EVENTS,), latency_s=STOP_TAIL_LATENCY_S)
        except NotImplementedError:
            return  # a bus that cannot tail: the task alone carries the stop
        try:
            while True:
                for message in await tail.poll(1000, timeout=0.5):
                    if message.headers.get(H_TYPE) != "SandboxStopRequested":
                        continue
                    if H_REPLAY in message.headers:
                        continue  # a replay is never a command
                    event = decode(message)
                    assert isinstance(event, SandboxStopRequested)
                    if event.sandbox_id in self.worker.runs:
                        self.worker.stop_sandbox(event.sandbox_id)
        finally:
            await tail.close()

    def _report_lost_runs(self) -> None:
        """Runs this worker started and never ended died with its last process."""
        runs = [
            event.execution_id
            for event in _retained(self.ports, "worker")
            if isinstance(event, ExecutionStarted) and event.worker_id == self.worker.worker_id
        ]
        self.worker.abandon_lost_runs(runs)

    def _recorded(self, events: Sequence[DomainEvent]) -> None:
        # A stop recorded in this process reaches its run at once (its task follows on the
        # bus; stopping twice is harmless): while a stop drains the runs the worker takes
        # no more tasks, yet a cancel or a time-out must still stop its run.
        for event in events:
            if isinstance(event, SandboxStopRequested):
                self.ports.io.call_soon(self.worker.stop_sandbox, event.sandbox_id)

    async def stop(self) -> None:
        """Take no new tasks; runs in progress get the shutdown grace, then are abandoned
        (the next start reports them lost with their output so far)."""
        grace = self.ports.settings.shutdown_grace_s
        if self.consumer is not None:
            self.consumer.stop()
        if self._stops is not None:
            self._stops.cancel()  # stops still reach runs in the grace: by their tasks
        await _finish(self, max(grace, 1.0))
        await self.worker.drain(grace)
        with suppress(ValueError):
            self.ports.store.listeners.remove(self._recorded)
        await self.worker.close()


class ProjectionsRole(TaskRole):
    name = "projections"

    def __init__(self, ports: RolePorts) -> None:
        super().__init__()
        self.ports = ports
        self.projector = ReadModelProjector(
            ports.bus, ports.read_model, feed=ports.feed, blocking=ports.io.run
        )

    async def start(self) -> None:
        # What the store holds beyond the read model's own tracked position (a new read
        # model, or events the bus no longer has); the bus brings the rest.
        await self.ports.io.run(self._backfill)
        self.spawn(self.projector.run())
        self.started = True

    def _backfill(self) -> None:
        """Backfill from where every partition's projection has got to: all the events up
        to the lowest of their positions are in (each partition is applied in log order),
        so a restart reads the log after it, not all that came since the last backfill."""
        model, spec = self.ports.read_model, TOPICS[EXECUTION_EVENTS]
        names = (f"{self.projector.group}/{spec.name}/{n}" for n in range(spec.partitions))
        floor = min(model.tracked(name) for name in names)
        if floor > model.tracked(BACKFILL):
            model.apply_batch([], Tracking(BACKFILL, floor))
        backfill(self.ports.store, model)

    async def stop(self) -> None:
        self.projector.stop()
        await _finish(self)


WATCHED_IDLE_POLL_S = 1.0


class RelayRole(TaskRole):
    name = "relay"

    def __init__(self, ports: RolePorts) -> None:
        super().__init__()
        self.ports = ports
        self.relay = Relay(ports.store, ports.bus, ports.io)
        io = ports.io
        self._listener = lambda ids, stored: io.call_soon(self.relay.offer, ids, stored)
        self._watch: StoreWatch | None = None

    async def start(self) -> None:
        self.ports.store.record_listeners.append(self._listener)
        loop = asyncio.get_running_loop()

        def wake() -> None:  # on the watch's thread
            with suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self.relay.wake)

        # Other processes' writes wake the relay at once where the store tells of them;
        # the idle poll is then only a fallback.
        self._watch = await self.ports.io.run(self.ports.store.watch, wake)
        if self._watch is not None:
            self.relay.idle_poll_s = WATCHED_IDLE_POLL_S
        self.spawn(self.relay.run())
        self.started = True

    async def stop(self) -> None:
        self.relay.stop()
        if self._watch is not None:
            await asyncio.to_thread(self._watch.stop)
        await _finish(self)
        with suppress(ValueError):
            self.ports.store.record_listeners.remove(self._listener)
        await self.relay.track_now()  # a clean stop leaves nothing to republish


class DeadLettersRole(TaskRole):
    name = "dead-letters"

    def __init__(self, ports: RolePorts, manager: DeadLetterManager) -> None:
        super().__init__()
        self.ports, self.manager = ports, manager

    async def start(self) -> None:
        self.spawn(self.manager.run())
        self.started = True

    async def stop(self) -> None:
        self.manager.stop()
        await _finish(self)


class ReplayRole(TaskRole):
    name = "replay"

    def __init__(self, ports: RolePorts, replays: ReplayService) -> None:
        super().__init__()
        self.ports, self.replays = ports, replays

    async def start(self) -> None:
        self.spawn(self.replays.run())
        self.started = True

    async def stop(self) -> None:
        # A replay finishes the batch it is publishing, so that it records its progress.
        self.replays.stop()
        await _finish(self, REPLAY_STOP_WAIT_S)


def builtin_role(
    name: str, ports: RolePorts, letters: DeadLetterManager, replays: ReplayService
) -> Role:
    if name == "coordinator":
        return CoordinatorRole(ports)
    if name == "saga":
        return SagaRole(ports)
    if name == "worker":
        return WorkerRole(ports)
    if name == "projections":
        return ProjectionsRole(ports)
    if name == "relay":
        return RelayRole(ports)
    if name == "dead-letters":
        return DeadLettersRole(ports, letters)
    if name == "replay":
        return ReplayRole(ports, replays)
    raise ValueError(f"roles: unknown role {name!r}")
