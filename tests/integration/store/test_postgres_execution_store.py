"""ExecutionStore on eventsourcing's PostgreSQL module, end to end against a real server."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresFactory

from codeexec.domain.aggregate import Cause
from codeexec.domain.events import ExecutionQueued, ExecutionRequested
from codeexec.domain.execution import Execution
from codeexec.ports.store_turn import store_turn
from codeexec.service.snapshots import SnapshotStore
from codeexec.service.store import ExecutionStore
from codeexec.service.store_config import PostgresParams, store_config
from tests.unit.factories import script

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def open_store(params: PostgresParams) -> ExecutionStore:
    config = store_config("postgres", environ=params.env())
    return ExecutionStore(config.env)


def requested(user: str = "alice") -> Execution:
    execution_id = uuid.uuid4()
    return Execution.request(execution_id, user, script("out hi"), Cause(NOW, execution_id, None))


def test_store_config_chooses_eventsourcings_postgres_module(postgres: PostgresParams) -> None:
    store = open_store(postgres)
    assert type(store.factory).__module__ == "codeexec.adapters.postgres_store"
    assert isinstance(store.factory, PostgresFactory)
    store.close()


def test_events_and_tracking_are_recorded_together_and_read_in_order(
    postgres: PostgresParams,
) -> None:
    store = open_store(postgres)
    executions = [requested() for _ in range(5)]
    positions: list[int] = []
    for n, execution in enumerate(executions, start=1):
        execution.queue(Cause(NOW, execution.id, None), n)
        positions += store.record(execution.collect_events(), [], Tracking("coordinator/p0", n))
    assert positions == sorted(positions) and len(positions) == 10
    assert store.tracked("coordinator/p0") == 5
    read = store.read(1, 100)
    assert [p for p, _ in read] == positions
    assert [type(e) for _, e in read] == [ExecutionRequested, ExecutionQueued] * 5
    # A batch whose tracking was recorded before records nothing: exactly-once effects.
    again = requested()
    with pytest.raises(IntegrityError):
        store.record(again.collect_events(), [], Tracking("coordinator/p0", 5))
    assert store.load(Execution, again.id) is None
    assert store.max_position() == positions[-1]
    store.close()


def test_events_of_pages_through_one_execution(postgres: PostgresParams) -> None:
    store = open_store(postgres)
    execution = requested()
    cause = Cause(NOW, execution.id, None)
    execution.queue(cause, 1)
    execution.schedule(cause)
    execution.start(cause, "w1")
    for n in range(6):
        execution.record_output(cause, "stdout", f"line {n}\n".encode(), "run")
    store.record(execution.collect_events())
    versions: list[int] = []
    after = 0
    while page := store.events_of(execution.id, after, limit=4):
        versions += [e.aggregate_version for e in page]
        after = page[-1].aggregate_version
    assert versions == list(range(1, 11))
    loaded = store.load(Execution, execution.id)
    assert loaded is not None and loaded.version == 10 and loaded.output_seq == 6
    store.close()


def test_two_writers_of_one_aggregate_exactly_one_wins(postgres: PostgresParams) -> None:
    first, second = open_store(postgres), open_store(postgres)
    execution = requested()
    first.record(execution.collect_events())
    copies = [first.load(Execution, execution.id), second.load(Execution, execution.id)]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def write(store: ExecutionStore, copy: Execution | None, depth: int) -> None:
        assert copy is not None
        copy.queue(Cause(NOW, copy.id, None), depth)
        barrier.wait()
        try:
            store.record(copy.collect_events())
            outcomes.append("won")
        except IntegrityError:
            outcomes.append("lost")

    threads = [
        threading.Thread(target=write, args=(store, copy, n))
        for n, (store, copy) in enumerate(zip((first, second), copies, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost", "won"]
    assert [e.aggregate_version for e in first.events_of(execution.id)] == [1, 2]
    first.close()
    second.close()


def test_one_database_holds_events_read_model_and_keys(postgres: PostgresParams) -> None:
    from codeexec.adapters.postgres_read_model import PostgresExecutionReadModel
    from codeexec.adapters.sql_key_store import PostgresKeyStore

    config = store_config(environ={"CODEEXEC_STORE": "postgres", **postgres.env()})
    store, model, keys = ExecutionStore(config.env), config.read_model(), config.key_store()
    assert isinstance(model, PostgresExecutionReadModel)
    assert isinstance(keys, PostgresKeyStore)
    execution = requested()
    events = execution.collect_events()
    positions = store.record(events)
    model.apply_batch(list(zip(positions, events, strict=True)))
    key = keys.create("alice")
    view = model.get(execution.id)
    assert view is not None and view.seq == positions[0]
    assert keys.authenticate(key) is not None
    for closable in (store, model, keys):
        closable.close()


async def test_the_embedded_runtime_runs_on_postgres(
    postgres: PostgresParams, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codeexec import Codeexec, Settings
    from codeexec.adapters.fake_sandbox import FakeSandbox

    for name, value in postgres.env().items():
        monkeypatch.setenv(name, value)
    async with Codeexec(Settings(store="postgres"), sandbox=FakeSandbox()) as cx:
        view = await cx.submit("alice", script("out héllo"))
        done = await cx.wait(view.id, timeout=10)
        assert done.status == "succeeded" and "héllo".encode() in done.stdout
    again = open_store(postgres)
    assert [type(e).__name__ for e in again.events_of(view.id)][-1] == "ExecutionCompleted"
    again.close()


def test_limits_changed_on_one_host_are_read_on_another(postgres: PostgresParams) -> None:
    from codeexec.domain.limits import LimitsDocument, ResourceMaxima
    from codeexec.service.limits import StoredLimits

    default = LimitsDocument(max_resource_limits=ResourceMaxima())
    here, there = open_store(postgres), open_store(postgres)
    StoredLimits(here, default).change(default.model_copy(update={"max_running": 3}), "a", NOW)
    StoredLimits(there, default).change(default.model_copy(update={"max_running": 4}), "b", NOW)
    assert StoredLimits(here, default).current().max_running == 4
    latest = StoredLimits(here, default).latest()
    assert latest is not None and (latest.aggregate_version, latest.by) == (2, "b")
    here.close()
    there.close()


def _open_and_close(env: dict[str, str], start: Any) -> None:
    """As the runtime opens the store: a call of the store thread, so inside a turn whose
    commit comes after the call (here, a moment later)."""
    start.wait()
    config = store_config("postgres", environ=env)
    with store_turn() as turn:
        store = ExecutionStore(config.env)
        SnapshotStore(store)
        time.sleep(0.2)  # the turn's other calls
        turn.commit()
    store.close()


def test_processes_starting_together_on_a_new_schema_all_open_the_store(
    postgres: PostgresParams,
) -> None:
    """Every process of a new deployment creates the tables at once: eventsourcing's
    `CREATE TYPE` and `CREATE TABLE IF NOT EXISTS` collide on PostgreSQL's catalog when
    two run together (seen about one start in three with six processes), unless they take
    turns (the schema lock), each committing its creations before the next goes, even from
    inside a store turn. Three new schemas, six processes each."""
    import psycopg
    from psycopg import sql

    context = multiprocessing.get_context("spawn")
    for round_ in range(3):
        params = replace(postgres, schema=f"{postgres.schema}_{round_}")
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(params.schema)))
        start = context.Event()
        processes = [
            context.Process(target=_open_and_close, args=(params.env(), start)) for _ in range(6)
        ]
        for process in processes:
            process.start()
        start.set()
        for process in processes:
            process.join(60)
        assert [p.exitcode for p in processes] == [0] * 6, f"round {round_}"
        store = open_store(params)
        assert store.max_position() == 0
        store.close()


def test_a_watch_hears_of_writes_other_processes_commit(postgres: PostgresParams) -> None:
    """The relay's wake-up: another store's commit reaches the watch's callback (a
    liveness check: the 10 s bound is a hang guard, not a latency claim)."""
    reader, writer = open_store(postgres), open_store(postgres)
    heard = threading.Event()
    watch = reader.watch(heard.set)
    assert watch is not None
    try:
        assert heard.wait(10)  # once at start: writes from before LISTEN are not missed
        heard.clear()
        writer.record(requested().collect_events())
        assert heard.wait(10)
    finally:
        watch.stop()
        reader.close()
        writer.close()


def test_stores_that_cannot_tell_of_writes_have_no_watch() -> None:
    assert ExecutionStore().watch(lambda: None) is None
