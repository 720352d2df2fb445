"""Workers compete on one consumer group: each task runs once, on one of them; a worker
reports lost only the runs it started itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.domain.events import ExecutionStarted
from codeexec.runtime import ALL_ROLES, Codeexec, Settings
from codeexec.service.worker_identity import WORKER_GROUP, worker_id_for
from tests.unit.factories import eventually, roomy, script


@pytest.fixture
def shared_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One SQLite event store for several runtimes (as a shared database would be)."""
    database = tmp_path / "shared.sqlite3"
    monkeypatch.setenv("PERSISTENCE_MODULE", "codeexec.adapters.sqlite_store")
    monkeypatch.setenv("SQLITE_DBNAME", str(database))
    return database


def settings(data_dir: Path, roles: frozenset[str], worker_id: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        store="sqlite",
        coordinator=roomy(),
        roles=roles,
        worker_id=worker_id,
        timer_interval_s=0.02,
    )


async def test_two_workers_on_one_group_run_each_task_once(
    tmp_path: Path, shared_sqlite: Path
) -> None:
    bus = InMemoryEventBus()
    main = Codeexec(settings(tmp_path / "a", ALL_ROLES, "w-a"), sandbox=FakeSandbox(), bus=bus)
    other = Codeexec(
        settings(tmp_path / "b", frozenset({"worker"}), "w-b"), sandbox=FakeSandbox(), bus=bus
    )
    async with main, other:
        views = [await main.submit("alice", script(f"out {i}")) for i in range(40)]
        done = await asyncio.gather(*(main.wait(v.id, timeout=10) for v in views))
        assert [d.status for d in done] == ["succeeded"] * 40, [(d.status, d.message) for d in done]
        assert [d.stdout for d in done] == [f"{i}\n".encode() for i in range(40)]
        runners: list[str] = []
        for view in views:
            started = [e async for e in main.events(view.id, follow=False)]
            starts = [e for e in started if isinstance(e, ExecutionStarted)]
            assert len(starts) == 1, f"{view.id} started {len(starts)} times"
            runners.append(starts[0].worker_id)
    # Both members took a share of the partitions, and nobody else ran anything.
    assert set(runners) == {"w-a", "w-b"}
    assert WORKER_GROUP in bus.groups() and not {"w-a", "w-b"} & set(bus.groups())


def test_a_worker_keeps_its_id_in_its_data_dir_unless_one_is_configured(tmp_path: Path) -> None:
    first = worker_id_for(tmp_path / "d")
    assert first.startswith("worker-")
    assert worker_id_for(tmp_path / "d") == first  # stable across restarts
    assert worker_id_for(tmp_path / "e") != first  # another host, another id
    assert worker_id_for(tmp_path / "d", "w-7") == "w-7"
    assert worker_id_for(None) != worker_id_for(None)


def test_a_data_dir_from_before_worker_ids_keeps_the_old_name(tmp_path: Path) -> None:
    (tmp_path / "events.sqlite3").write_bytes(b"SQLite format 3\0")  # an existing store
    assert worker_id_for(tmp_path) == "worker"


async def test_a_cancel_stops_the_run_on_whichever_worker_runs_it(
    tmp_path: Path, shared_sqlite: Path
) -> None:
    # A third worker joins while runs are in progress: partitions move, so a stop's task
    # may reach a worker that is not running it. The runner still hears it and stops.
    bus = InMemoryEventBus()
    roles = ALL_ROLES - {"worker"}
    main = Codeexec(settings(tmp_path / "a", roles, "w-a"), sandbox=FakeSandbox(), bus=bus)
    first = Codeexec(
        settings(tmp_path / "b", frozenset({"worker"}), "w-b"), sandbox=FakeSandbox(), bus=bus
    )
    async with main, first:
        views = [await main.submit("alice", script("hang")) for _ in range(12)]
        for view in views:
            await eventually(lambda v=view: main.get(v.id).state == "running", 10)
        late = Codeexec(
            settings(tmp_path / "c", frozenset({"worker"}), "w-c"), sandbox=FakeSandbox(), bus=bus
        )
        async with late:
            await asyncio.sleep(0.2)  # the group rebalanced
            for view in views:
                await main.cancel(view.id)
            done = [await main.wait(v.id, timeout=10) for v in views]
        assert [d.state for d in done] == ["cancelled"] * 12
