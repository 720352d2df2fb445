"""Live events reach a process that did not record them: its feed follows the bus."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

from codeexec import Codeexec, Settings
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus, InMemoryTail
from codeexec.commands import CommandService
from codeexec.domain.events import TERMINAL_EVENT_TYPES
from codeexec.domain.routing import EXECUTION_EVENTS, TOPICS
from codeexec.ports.bus import Message
from codeexec.ports.execution_queries import ExecutionQueries
from codeexec.ports.read_model import ExecutionView
from codeexec.runtime import ALL_ROLES
from codeexec.service.live_feed import LiveFeed
from codeexec.service.projections import ExecutionFeed
from tests.unit.factories import roomy, script


async def test_a_message_wakes_the_followers_of_its_execution() -> None:
    bus = InMemoryEventBus()
    await bus.declare(list(TOPICS.values()))
    feed = ExecutionFeed()
    live = LiveFeed(bus, feed)
    task = asyncio.create_task(live.run())
    await asyncio.wait_for(live.ready.wait(), 5)
    mine, other = uuid.uuid4(), uuid.uuid4()
    signal, unrelated = feed.watch(mine), feed.watch(other)
    await bus.publish(
        [Message(EXECUTION_EVENTS, str(mine), b"{}"), Message(EXECUTION_EVENTS, "x", b"")]
    )
    await asyncio.wait_for(signal.wait(), 5)
    assert not unrelated.is_set()
    live.stop()
    await task


async def test_another_process_follows_an_execution_to_its_end() -> None:
    """An API process that records nothing itself sees every event of a run live."""
    bus = InMemoryEventBus()
    async with Codeexec(Settings(coordinator=roomy()), sandbox=FakeSandbox(), bus=bus) as cx:
        api_feed = ExecutionFeed()  # the other process's feed: no local write wakes it
        live = LiveFeed(bus, api_feed)
        task = asyncio.create_task(live.run())
        await asyncio.wait_for(live.ready.wait(), 5)
        view = await cx.submit("alice", script("out a\nsleep 0.05\nout b"))
        assert cx.store is not None
        seen, version, wakes = [], 0, 0
        while not (seen and isinstance(seen[-1], TERMINAL_EVENT_TYPES)):
            signal = api_feed.watch(view.id)
            new = cx.store.events_of(view.id, version)
            if not new:
                await asyncio.wait_for(signal.wait(), 5)  # only the bus can wake it
                wakes += 1
            api_feed.unwatch(view.id, signal)
            seen += new
            version = seen[-1].aggregate_version if seen else 0
        assert wakes >= 2 and live.woken >= len(seen)
        assert [e.aggregate_version for e in seen] == list(range(1, len(seen) + 1))
        live.stop()
        await task


class CountingTails(InMemoryEventBus):
    def __init__(self) -> None:
        super().__init__()
        self.tails = 0

    async def tail(self, topics: Sequence[str], latency_s: float = 0.02) -> InMemoryTail:
        self.tails += 1
        return await super().tail(topics, latency_s)


async def test_only_a_process_that_follows_executions_tails_the_bus() -> None:
    """A role-only process (`live_feed=False`) costs the broker no tail; an API process
    (no projections role here) keeps one."""
    for live_feed, tails in ((False, 0), (True, 1)):
        bus = CountingTails()
        roles = frozenset({"coordinator", "saga", "relay"})  # a worker tails for stops
        settings = Settings(coordinator=roomy(), roles=roles, live_feed=live_feed)
        async with Codeexec(settings, sandbox=FakeSandbox(), bus=bus):
            await asyncio.sleep(0.05)  # the feed's task has run
            assert bus.tails == tails


async def test_a_process_with_the_projector_tails_a_bus_other_processes_share() -> None:
    """Several `serve` processes on one broker share the projections group, so each one's
    projector sees only its partitions' executions: their waits and event streams follow
    the bus too. On a bus of this process alone, the projector sees everything."""
    for durable, tails in ((False, 0), (True, 1)):
        bus = CountingTails()
        bus.durable = durable
        roles = ALL_ROLES - {"worker"}  # a worker tails for stops
        settings = Settings(coordinator=roomy(), roles=roles, live_feed=True)
        async with Codeexec(settings, sandbox=FakeSandbox(), bus=bus):
            await asyncio.sleep(0.05)  # the feed's task has run
            assert bus.tails == tails, durable


class LaggingReadModel:
    """The read model of another process (the projections role's) that shows an
    execution's end only from its `shows_end_at`th read on."""

    def __init__(self, queries: ExecutionQueries, shows_end_at: int) -> None:
        self.queries, self.shows_end_at, self.reads = queries, shows_end_at, 0
        self.read = asyncio.Event()

    async def get(self, execution_id: uuid.UUID) -> ExecutionView | None:
        self.reads += 1
        self.read.set()
        view = await self.queries.get(execution_id)
        if view is None or self.reads >= self.shows_end_at:
            return view
        return replace(view, state="running", status="running", version_seen=3)


async def test_a_wait_that_heard_the_end_first_answers_once_the_read_model_shows_it() -> None:
    """An API process hears a run's end from the bus before the projections role (another
    process) has folded it into the read model. Its wait looks at the read model again
    soon after (the answer still comes from the read model, which admission counts from),
    rather than after a second of silence: given half a second, it answers with the end
    from the read model, not from reading the store at its deadline."""
    async with Codeexec(Settings(coordinator=roomy()), sandbox=FakeSandbox()) as cx:
        view = await cx.wait((await cx.submit("alice", script("out a"))).id)
        commands = cx.commands
        lagging = LaggingReadModel(commands.queries, shows_end_at=4)
        feed = ExecutionFeed()
        api = CommandService(
            commands.store,
            commands.io,
            commands.clock,
            commands.read_model,
            cast(ExecutionQueries, lagging),
            feed,
            commands.admission,
        )
        folded = 0
        fold = api.fold_from_store

        async def counted(*args: Any, **kwargs: Any) -> ExecutionView:
            nonlocal folded
            folded += 1
            return await fold(*args, **kwargs)

        api.fold_from_store = counted  # type: ignore[method-assign]
        api.catch_up = counted  # type: ignore[method-assign]
        waiting = asyncio.create_task(api.wait(view.id, timeout=0.5))
        await lagging.read.wait()
        feed.notify(view.id, ended=True)  # heard from the bus; the read model lags
        answer = await waiting
        assert answer.terminal and answer.stdout == view.stdout
        assert lagging.reads >= lagging.shows_end_at and folded == 0
