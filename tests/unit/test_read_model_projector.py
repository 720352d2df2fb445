"""The projections role on a persisted read model: fed by the bus, applied once, resumable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from codeexec import Codeexec, Settings
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.adapters.sqlite_read_model import SQLiteExecutionReadModel
from codeexec.domain.events import DomainEvent, to_json
from codeexec.domain.routing import EXECUTION_EVENTS, TOPICS
from codeexec.ports.bus import H_POSITION, H_REPLAY, H_TYPE, Message
from codeexec.ports.read_model import ExecutionQuery, shown
from codeexec.service.projections import ExecutionFeed
from codeexec.service.read_model_projector import ReadModelProjector, backfill
from codeexec.service.store_thread import StoreThread
from codeexec.testing.read_model import Story
from tests.unit.factories import roomy, script


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def relayed(position: int, event: DomainEvent, **headers: str) -> Message:
    """What the relay publishes for a stored event."""
    return Message(
        EXECUTION_EVENTS,
        str(event.execution_id),
        to_json(event),
        {H_TYPE: event.type_name, H_POSITION: str(position), **headers},
    )


async def test_events_on_the_bus_reach_the_persisted_views_once(tmp_path: Path) -> None:
    bus = InMemoryEventBus()
    await bus.declare(list(TOPICS.values()))
    model = SQLiteExecutionReadModel(tmp_path / "views.sqlite3")
    feed = ExecutionFeed()
    story = Story()
    executions = [story.finished("alice", n) for n in range(10)]
    events = story.record(*executions)
    woken = feed.watch(executions[3].id)
    io = StoreThread(busy_timeout_s=2.0)  # read-model I/O off the event loop, as wired
    projector = ReadModelProjector(bus, model, feed=feed, blocking=io.run)
    task = asyncio.create_task(projector.run())
    await bus.publish([relayed(p, e) for p, e in events])
    await bus.publish([relayed(p, e, **{H_REPLAY: "r1"}) for p, e in events])  # never new
    await eventually(lambda: projector.applied == 60 and bus.backlog("projections") == 0)
    assert woken.is_set()
    assert model.counts() == {"completed": 10}
    # A crash that lost the group's commits: everything is delivered again, applied once.
    bus.redeliver("projections", forget_commits=True)
    await eventually(lambda: bus.backlog("projections") == 0)
    projector.stop()
    await task
    assert all(v.events == 6 for v in model.list(ExecutionQuery(limit=100)).items)
    assert sum(model.tracked(f"projections/{EXECUTION_EVENTS}/{n}") > 0 for n in range(16)) > 1
    await io.close(model.close)


async def test_a_persisted_projection_matches_the_embedded_one(tmp_path: Path) -> None:
    """Beside an embedded runtime on the same bus, the SQLite views equal its own."""
    bus = InMemoryEventBus()
    model = SQLiteExecutionReadModel(tmp_path / "views.sqlite3")
    async with Codeexec(Settings(coordinator=roomy()), sandbox=FakeSandbox(), bus=bus) as cx:
        projector = ReadModelProjector(bus, model)
        projector.group = "projections-sql"  # beside the runtime's own projection
        task = asyncio.create_task(projector.run())
        views = [await cx.submit(f"u{n % 2}", script(f"out {n}")) for n in range(12)]
        for view in views:
            await cx.wait(view.id, timeout=5)
        await eventually(lambda: bus.backlog("projections-sql") == 0)
        await eventually(lambda: model.counts() == cx.read_model.counts())
        projector.stop()
        await task
        for view in views:
            mine, theirs = model.get(view.id), cx.get(view.id)
            assert mine is not None and asdict(mine) == asdict(theirs)
    model.close()


async def test_an_unreadable_message_is_skipped_not_retried_forever(tmp_path: Path) -> None:
    bus = InMemoryEventBus()
    await bus.declare(list(TOPICS.values()))
    model = SQLiteExecutionReadModel(tmp_path / "views.sqlite3")
    story = Story()
    events = story.record(story.finished("alice"))
    execution_id = str(events[0][1].execution_id)
    garbage = Message(EXECUTION_EVENTS, execution_id, b"{not json", {H_POSITION: "3"})
    projector = ReadModelProjector(bus, model)
    task = asyncio.create_task(projector.run())
    await bus.publish([relayed(p, e) for p, e in events[:2]] + [garbage])
    await bus.publish([relayed(p + 1, e) for p, e in events[2:]])  # after the garbage
    await eventually(lambda: projector.applied == 6 and bus.backlog("projections") == 0)
    projector.stop()
    await task
    view = model.get(events[0][1].execution_id)
    assert view is not None and view.state == "completed" and view.events == 6
    model.close()


async def test_a_new_persisted_read_model_backfills_from_the_store(tmp_path: Path) -> None:
    async with Codeexec(Settings(coordinator=roomy()), sandbox=FakeSandbox()) as cx:
        views = [await cx.submit("alice", script(f"out {n}")) for n in range(5)]
        for view in views:
            await cx.wait(view.id, timeout=5)
        assert cx.store is not None
        model = SQLiteExecutionReadModel(tmp_path / "views.sqlite3")
        read = backfill(cx.store, model, batch=7)
        assert read == cx.store.max_position()
        assert backfill(cx.store, model) == 0  # resumes where it stopped: nothing new
        for view in views:
            assert asdict(model.get(view.id)) == asdict(cx.get(view.id))  # type: ignore[arg-type]
        model.close()


async def test_a_batch_of_saga_events_only_costs_no_write_of_its_own(tmp_path: Path) -> None:
    """Saga events change no view: a poll of only those is not written (its position goes
    with the next write); the views and what a restart re-reads stay as before."""
    async with Codeexec(Settings(coordinator=roomy()), sandbox=FakeSandbox()) as cx:
        done = await cx.wait((await cx.submit("alice", script("out a"))).id, timeout=5)
        assert cx.store is not None
        stored = cx.store.read(1, 1000)
    saga = [(p, e) for p, e in stored if not shown(e)]
    execution = [(p, e) for p, e in stored if shown(e)]
    assert saga and execution
    bus = InMemoryEventBus()
    await bus.declare(list(TOPICS.values()))
    model = SQLiteExecutionReadModel(tmp_path / "views.sqlite3")
    writes: list[object] = []

    async def blocking(fn: Callable[..., object], *args: object) -> object:
        writes.append(fn)  # every read-model transaction goes through here
        return fn(*args)

    projector = ReadModelProjector(bus, model, blocking=blocking)
    task = asyncio.create_task(projector.run())
    await bus.publish([relayed(p, e) for p, e in execution])
    await eventually(lambda: projector.applied == len(execution))
    before = len(writes)
    await bus.publish([relayed(p, e) for p, e in saga])
    await eventually(lambda: bus.backlog("projections") == 0)
    assert len(writes) == before  # nothing to fold: no transaction
    view = model.get(done.id)
    assert view is not None and asdict(view) == asdict(done)
    projector.stop()
    await task
    model.close()
