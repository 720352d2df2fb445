"""An API-only process (no roles) and a roles process share a store and a bus: commands and
queries in one, the work in the other, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.adapters.sqlite_read_model import SQLiteExecutionReadModel
from codeexec.domain.events import ExecutionStarted
from codeexec.domain.limits import LimitsDocument, ResourceMaxima
from codeexec.ports.read_model import ExecutionReadModel
from codeexec.runtime import ALL_ROLES, Codeexec, Settings
from codeexec.service.store_config import PostgresParams
from tests.unit.factories import eventually, roomy, script

pytestmark = pytest.mark.integration

Models = Callable[[], ExecutionReadModel | None]


def settings(data_dir: Path, store: str, roles: frozenset[str]) -> Settings:
    return Settings(
        data_dir=data_dir, store=store, coordinator=roomy(), roles=roles, timer_interval_s=0.05
    )


@asynccontextmanager
async def pair(
    tmp_path: Path, store: str, model: Models
) -> AsyncIterator[tuple[Codeexec, Codeexec]]:
    """(api, roles): separate data dirs, as on separate hosts; one store, one bus."""
    bus = InMemoryEventBus()
    roles = Codeexec(
        settings(tmp_path / "roles", store, ALL_ROLES),
        sandbox=FakeSandbox(),
        bus=bus,
        read_model=model(),
    )
    api = Codeexec(
        settings(tmp_path / "api", store, frozenset()),
        sandbox=FakeSandbox(),
        bus=bus,
        read_model=model(),
    )
    async with roles, api:
        yield api, roles


@pytest.fixture
def shared_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Models:
    monkeypatch.setenv("PERSISTENCE_MODULE", "codeexec.adapters.sqlite_store")
    monkeypatch.setenv("SQLITE_DBNAME", str(tmp_path / "events.sqlite3"))
    return lambda: SQLiteExecutionReadModel(tmp_path / "read_model.sqlite3")


@pytest.fixture
def shared_postgres(postgres: PostgresParams, monkeypatch: pytest.MonkeyPatch) -> Models:
    for name, value in postgres.env().items():
        monkeypatch.setenv(name, value)
    return lambda: None  # the store's own: tables in the shared database


async def _api_only_process_serves_what_the_roles_process_runs(
    tmp_path: Path, store: str, model: Models
) -> None:
    async with pair(tmp_path, store, model) as (api, roles):
        assert api.health() == {} and api.healthy  # no roles here
        views = [await api.submit("alice", script(f"out {n}\nexit {n % 2}")) for n in range(12)]
        done = await asyncio.wait_for(
            asyncio.gather(*(api.wait(v.id, timeout=20) for v in views)), 30
        )
        assert [d.status for d in done] == ["succeeded", "runtime_error"] * 6
        assert [d.stdout for d in done] == [f"{n}\n".encode() for n in range(12)]
        # Live events reach the API process from the bus, whoever recorded them.
        streamed = [e.type_name async for e in api.events(views[0].id)]
        assert streamed[0] == "ExecutionRequested" and streamed[-1] == "ExecutionCompleted"
        assert api._live is not None and api._live.woken > 0  # woken by the bus's tail
        starts = [e for e in (await _all(api, views[0].id)) if isinstance(e, ExecutionStarted)]
        assert len(starts) == 1
        # The shared read model, kept by the roles process, lists them in the API process.
        await eventually(lambda: all(api.get(v.id).terminal for v in views), 10)
        assert (await api.queue_status()).running == 0
        # Limits changed in the API process reach the coordinator in the other.
        document = LimitsDocument.from_config(roomy(), ResourceMaxima(), False)
        await api.operations.limits.change(document.model_copy(update={"max_queue": 7}), "admin")
        await eventually(lambda: roles.coordinator.policy.config.max_queue == 7, 10)
        assert api.operations.limits.config.max_queue == 7


async def _all(cx: Codeexec, execution_id: object) -> list[object]:
    return [e async for e in cx.events(execution_id, follow=False)]  # type: ignore[arg-type]


async def test_api_only_process_on_a_shared_sqlite_store(
    tmp_path: Path, shared_sqlite: Models
) -> None:
    await _api_only_process_serves_what_the_roles_process_runs(tmp_path, "sqlite", shared_sqlite)


async def test_api_only_process_on_a_shared_postgres_store(
    tmp_path: Path, shared_postgres: Models
) -> None:
    await _api_only_process_serves_what_the_roles_process_runs(
        tmp_path, "postgres", shared_postgres
    )


async def test_a_roles_process_restarts_from_its_snapshot_not_the_history(
    tmp_path: Path, shared_sqlite: Models
) -> None:
    bus = InMemoryEventBus()
    config = settings(tmp_path / "roles", "sqlite", ALL_ROLES)
    config.snapshot_every = 20
    async with Codeexec(config, sandbox=FakeSandbox(), bus=bus, read_model=shared_sqlite()) as cx:
        views = [await cx.submit("bob", script("out x")) for _ in range(30)]
        await asyncio.gather(*(cx.wait(v.id, timeout=20) for v in views))
        await asyncio.sleep(1.5)  # the runner follows the log and saves snapshots
    again = Codeexec(config, sandbox=FakeSandbox(), bus=bus, read_model=shared_sqlite())
    async with again:
        assert again._runner is not None
        shadow = again._runner.ports.shadow
        assert all(shadow.saved[name] > 0 for name in ("coordinator", "saga", "worker"))
        assert shadow.read < 100  # the log after the snapshots, not the ~200 events before
        view = await again.submit("bob", script("out after"))
        assert (await again.wait(view.id, timeout=20)).stdout == b"after\n"
