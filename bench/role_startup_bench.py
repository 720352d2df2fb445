"""Role start-up on a store holding 100,000 finished executions, SQLite and PostgreSQL.

Each role starts alone (a process running only it) and prints
`bench: role_startup_<role>_<store> X s`; beside it, `role_startup_full_fold_<store>` is what
every start cost before roles rebuilt only their own state (the whole log folded into the
coordinator, saga, read model, dead letters and replays). The history is written straight
through the store in batches (copies of one finished execution's stored events with new
ids); then, untimed, what a running deployment keeps as it goes: the read model current
(`backfill`), the relay's position, and the snapshots the runner saves every
`snapshot_every` events (that first fold is printed as `role_snapshot_first_fold_<store>`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventsourcing.persistence import StoredEvent, Tracking

from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.adapters.memory_read_model import InMemoryExecutionReadModel
from codeexec.domain.aggregate import Cause
from codeexec.domain.execution import Execution
from codeexec.domain.model import RunResult, RunSpec, SandboxStatus, SourceFile
from codeexec.domain.saga import ExecutionSaga
from codeexec.ports.clock import SystemClock
from codeexec.runner import retentions
from codeexec.runtime import ALL_ROLES, Codeexec, Settings
from codeexec.service.coordinator_process import CoordinatorProcess
from codeexec.service.read_model_projector import backfill
from codeexec.service.relay import RELAY
from codeexec.service.saga_orchestrator import SagaOrchestrator
from codeexec.service.snapshots import Shadow, SnapshotStore
from codeexec.service.store import ExecutionStore
from codeexec.service.store_config import PostgresParams
from codeexec.testing.postgres import server_params

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BATCH = 500  # executions per write
SPACING_S = 0.05  # between executions: 20 a second accepted, steadily


def template() -> list[StoredEvent]:
    """One finished execution's stored events: requested ... completed, saga done."""
    execution_id = uuid.UUID(int=1)
    spec = RunSpec(language="fake", files=(SourceFile(name="main", content=b"out hi"),))
    cause = Cause(NOW, execution_id, None)
    execution = Execution.request(execution_id, "bench", spec, cause)
    execution.queue(cause, 1)
    execution.schedule(cause)
    saga = ExecutionSaga.begin(execution, cause, timedelta(seconds=30))
    execution.start(cause, "worker-bench")
    execution.finish(cause, RunResult(status=SandboxStatus.SUCCEEDED, exit_code=0, stdout=b"hi\n"))
    saga.compensate(cause, outcome="ExecutionCompleted")
    events = execution.collect_events()
    store = ExecutionStore()
    # As recorded live: the saga begins after the schedule, completes after the end.
    both = [*events[:3], *saga.collect_events(), *events[3:]]
    return [store.mapper.to_stored_event(e) for e in both]


def copies(stored: list[StoredEvent], n: int, first: int) -> list[StoredEvent]:
    """`n` copies with new ids, one every SPACING_S seconds from execution `first` on."""
    out: list[StoredEvent] = []
    old_exec = str(uuid.UUID(int=1)).encode()
    saga_id = stored[3].originator_id
    old_saga = str(saga_id).encode()
    old_time = NOW.isoformat().replace("+00:00", "Z").encode()
    assert old_time in stored[0].state, stored[0].state[:300]
    for i in range(first, first + n):
        new_exec, new_saga = uuid.uuid4(), uuid.uuid4()
        at = (NOW + timedelta(seconds=i * SPACING_S)).isoformat().replace("+00:00", "Z")
        for s in stored:
            state = s.state.replace(old_exec, str(new_exec).encode())
            state = state.replace(old_saga, str(new_saga).encode())
            state = state.replace(old_time, at.encode())
            origin = new_saga if s.originator_id == saga_id else new_exec
            out.append(StoredEvent(origin, s.originator_version, s.topic, state))
    return out


def fill(store: ExecutionStore, executions: int) -> float:
    started = time.perf_counter()
    stored = template()
    for done in range(0, executions, BATCH):
        batch = copies(stored, min(BATCH, executions - done), done)
        store.process_recorder.insert_events(batch)
    end = store.max_position()
    for name in (RELAY, RELAY + "/settled"):  # published long ago
        store.record([], (), Tracking(name, end))
    return time.perf_counter() - started


def old_full_fold(store: ExecutionStore) -> float:
    """What every start did before: the whole log into every role's state."""
    started = time.perf_counter()
    history = lambda: (e for _, e in store.read_all())  # noqa: E731
    coordinator = CoordinatorProcess(Settings().coordinator, frozenset, history)
    saga = SagaOrchestrator(store, SystemClock(), history=history)
    model = InMemoryExecutionReadModel()
    for position, event in store.read_all():
        coordinator.fold(event)
        saga.fold(event)
        model.apply(event, position)
    return time.perf_counter() - started


def prepare(store: ExecutionStore, settings: Settings, read_model: object) -> float:
    """Untimed in the role figures: the read model current, the snapshots saved."""
    backfill(store, read_model)  # type: ignore[arg-type]
    started = time.perf_counter()
    shadow = Shadow(store, SnapshotStore(store), retentions(settings), settings.snapshot_every)
    shadow.restore()
    for retention in shadow.retentions.values():
        shadow.save(retention)
    return time.perf_counter() - started


async def start_one(role: str, settings: Settings) -> float:
    one = Settings(
        data_dir=settings.data_dir,
        store=settings.store,
        roles=frozenset({role}),
        worker_id="worker-bench-2",
    )
    cx = Codeexec(one, sandbox=FakeSandbox(), bus=InMemoryEventBus())
    started = time.perf_counter()
    await cx.start()
    elapsed = time.perf_counter() - started
    await cx.stop()
    return elapsed


def run(name: str, settings: Settings, executions: int) -> None:
    config = settings.store_config()
    store = ExecutionStore(config.env)
    print(f"bench: role_startup_fill_{name} {fill(store, executions):.1f} s", flush=True)
    print(f"bench: role_startup_events_{name} {store.max_position()} events", flush=True)
    read_model = config.read_model()
    every = Settings(roles=ALL_ROLES)
    print(f"bench: role_snapshot_first_fold_{name} {prepare(store, every, read_model):.2f} s")
    print(f"bench: role_startup_full_fold_{name} {old_full_fold(store):.2f} s", flush=True)
    store.close()
    for role in sorted(ALL_ROLES):
        elapsed = asyncio.run(start_one(role, settings))
        print(f"bench: role_startup_{role}_{name} {elapsed:.3f} s", flush=True)


def postgres_database() -> tuple[PostgresParams, object]:
    import psycopg
    from psycopg import sql

    db = f"codeexec_bench_{os.getpid()}"
    with psycopg.connect(server_params().conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))

    def drop() -> None:
        with psycopg.connect(server_params().conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
            )

    return server_params(db), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=100_000, help="finished executions")
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    args = parser.parse_args()
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            run("sqlite", Settings(data_dir=Path(tmp), store="sqlite"), args.n)
    if args.only in (None, "postgres"):
        params, drop = postgres_database()
        os.environ.update(params.env())
        try:
            with tempfile.TemporaryDirectory() as tmp:
                run("postgres", Settings(data_dir=Path(tmp), store="postgres"), args.n)
        finally:
            drop()  # type: ignore[operator]


if __name__ == "__main__":
    main()
