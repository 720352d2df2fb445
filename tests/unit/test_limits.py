"""Admin limits live in the event store: changed by events every coordinator applies."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from codeexec import Codeexec, Settings
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.domain.admin_limits import LIMITS_ID
from codeexec.domain.aggregate import Cause
from codeexec.domain.execution import Execution, State
from codeexec.domain.limits import LimitsDocument, ResourceMaxima, UserLimitsModel
from codeexec.domain.operations_events import LimitsChanged
from codeexec.service.coordinator_process import CoordinatorProcess
from codeexec.service.limits import LimitsFollower, StoredLimits, latest_change
from codeexec.service.live_feed import LiveFeed
from codeexec.service.projections import ExecutionFeed
from codeexec.service.store import ExecutionStore
from codeexec.service.store_thread import StoreThread
from codeexec.service.unit_of_work import UnitOfWork
from tests.unit.factories import roomy, script
from tests.unit.test_runtime import eventually

NOW = datetime(2026, 11, 30, tzinfo=UTC)
DEFAULT = LimitsDocument(max_resource_limits=ResourceMaxima())


def document(**changes: object) -> LimitsDocument:
    return DEFAULT.model_copy(update=changes)


def sqlite_store(path: Path) -> ExecutionStore:
    return ExecutionStore(
        {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path / "e.db")}
    )


def test_the_default_until_an_admin_changes_them(tmp_path: Path) -> None:
    limits = StoredLimits(sqlite_store(tmp_path), DEFAULT)
    assert limits.current() == DEFAULT and limits.latest() is None
    first = limits.change(document(max_running=2), "root", NOW)
    second = limits.change(
        document(max_running=3, user_limits={"bob": UserLimitsModel()}), "ops", NOW
    )
    assert (first.aggregate_version, second.aggregate_version) == (1, 2)
    # Another process (another store on the same database) reads the last change.
    elsewhere = StoredLimits(sqlite_store(tmp_path), DEFAULT)
    assert elsewhere.current().max_running == 3 and "bob" in elsewhere.current().user_limits
    latest = elsewhere.latest()
    assert isinstance(latest, LimitsChanged) and latest.by == "ops"
    assert latest.aggregate_id == LIMITS_ID


def test_two_admins_changing_at_once_both_are_recorded(tmp_path: Path) -> None:
    other = StoredLimits(sqlite_store(tmp_path), DEFAULT)
    other.change(document(max_running=1), "a", NOW)

    class Racing(StoredLimits):
        """Another admin's change lands between this one's read and its write."""

        raced = False

        def latest(self) -> LimitsChanged | None:
            found = super().latest()
            if not self.raced:
                self.raced = True
                other.change(document(max_running=2), "a", NOW)
            return found

    racing = Racing(sqlite_store(tmp_path), DEFAULT)
    assert racing.change(document(max_running=5), "b", NOW).aggregate_version == 3
    assert other.current().max_running == 5


def test_inconsistent_limits_record_nothing(tmp_path: Path) -> None:
    limits = StoredLimits(sqlite_store(tmp_path), DEFAULT)
    bad = LimitsDocument.model_construct(**{**dict(DEFAULT), "aging_interval_s": 0.0})
    with pytest.raises(ValueError, match="aging interval"):
        limits.change(bad, "root", NOW)
    assert limits.latest() is None


def test_a_limits_json_is_adopted_once_for_upgrades(tmp_path: Path) -> None:
    file = tmp_path / "limits.json"
    file.write_text(document(max_queue=42).model_dump_json())
    limits = StoredLimits(sqlite_store(tmp_path), DEFAULT)
    assert limits.adopt_file(file, NOW)
    assert limits.current().max_queue == 42
    file.write_text(document(max_queue=1).model_dump_json())
    assert not limits.adopt_file(file, NOW)  # the store's limits win from now on
    assert limits.current().max_queue == 42
    assert not limits.adopt_file(tmp_path / "missing.json", NOW)


async def test_a_coordinator_applies_a_change_and_schedules_what_now_fits() -> None:
    settings = Settings(coordinator=roomy(max_running=1))
    async with Codeexec(settings, sandbox=FakeSandbox()) as cx:
        assert cx.store is not None
        hanging = await cx.submit("alice", script("hang"))
        await eventually(lambda: cx.get(hanging.id).state == "running")
        waiting = await cx.submit("bob", script("out b"))
        await eventually(lambda: cx.get(waiting.id).state == "queued")
        limits = StoredLimits(cx.store, DEFAULT)
        wider = LimitsDocument.from_config(roomy(max_running=2), ResourceMaxima(), False)
        limits.change(wider, "root", cx.clock.now())
        assert (await cx.wait(waiting.id, timeout=5)).status == "succeeded"
        assert cx.coordinator.policy.config.max_running == 2
        await cx.cancel(hanging.id)
        await cx.wait(hanging.id, timeout=5)


async def test_another_process_follows_changes_through_the_bus() -> None:
    bus = InMemoryEventBus()
    async with Codeexec(Settings(coordinator=roomy()), sandbox=FakeSandbox(), bus=bus) as cx:
        assert cx.store is not None
        feed = ExecutionFeed()  # an API process's: it records nothing itself
        live = LiveFeed(bus, feed)
        seen: list[int] = []
        io = StoreThread(busy_timeout_s=2.0)
        follower = LimitsFollower(
            StoredLimits(cx.store, DEFAULT),
            feed,
            lambda d: seen.append(d.max_queue),
            blocking=io.run,
        )
        tasks = [asyncio.create_task(live.run()), asyncio.create_task(follower.run())]
        await asyncio.wait_for(live.ready.wait(), 5)
        await eventually(lambda: seen == [DEFAULT.max_queue])
        StoredLimits(cx.store, DEFAULT).change(document(max_queue=9), "root", cx.clock.now())
        await eventually(lambda: seen == [DEFAULT.max_queue, 9])
        live.stop()
        follower.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await io.close()


def test_a_coordinator_asks_the_store_before_refusing_for_a_limit() -> None:
    """A change of limits reaches a coordinator on its own partition of the log, so
    requests recorded after it can reach it first, from other partitions (seen across
    processes: every request over the old rate limit refused for seconds after an admin
    raised it). Before refusing a request for a limit, the coordinator reads the last
    change from the store; only limits it already applied refuse."""
    store = ExecutionStore({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    process = CoordinatorProcess(
        roomy(rate_limit=1, rate_window_s=3600), frozenset, lambda: (), lambda: latest_change(store)
    )

    def request() -> Execution:
        execution_id = uuid.uuid4()
        execution = Execution.request(
            execution_id, "alice", script("out a"), Cause(NOW, execution_id, None)
        )
        store.record(execution.collect_events())
        uow = UnitOfWork(store, NOW)
        requested = store.events_of(execution_id)[0]
        process.handle(requested, uow)
        uow.commit()
        decided = store.load(Execution, execution_id)
        assert decided is not None
        return decided

    assert request().state is State.SCHEDULED
    assert request().state is State.REJECTED  # over the rate limit in force, none stored
    raised = LimitsDocument.from_config(
        roomy(rate_limit=3, rate_window_s=3600), ResourceMaxima(), False
    )
    change = StoredLimits(store, DEFAULT).change(raised, "root", NOW)  # not consumed yet
    assert [request().state for _ in range(3)] == [State.SCHEDULED, State.SCHEDULED, State.REJECTED]
    assert process.limits_version == change.aggregate_version
    # The change arriving from the bus afterwards changes nothing; an older one neither.
    process.handle(change, UnitOfWork(store, NOW))
    assert process.policy.config.default_user_limits.rate_limit == 3
