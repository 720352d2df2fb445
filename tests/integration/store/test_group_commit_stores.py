"""Group commit on the real stores (SQLite file, PostgreSQL server): the store thread's
waiting calls are one database transaction, each call a savepoint of it."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from codeexec.domain.aggregate import Cause
from codeexec.domain.execution import Execution
from codeexec.service.store import ExecutionStore
from codeexec.service.store_config import PostgresParams, store_config
from codeexec.service.store_thread import StoreBusy, StoreThread
from tests.unit.factories import script

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
Opener = Callable[[], ExecutionStore]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    if request.param == "sqlite":
        env = store_config("sqlite", tmp_path, environ={}).env
    else:
        params: PostgresParams = request.getfixturevalue("postgres")
        env = store_config("postgres", environ=params.env()).env
    return lambda: ExecutionStore(env)


@pytest.fixture
async def io() -> AsyncIterator[StoreThread]:
    thread = StoreThread(busy_timeout_s=30, turn_s=10)  # a turn takes everything waiting
    yield thread
    await thread.close()


def requested() -> Execution:
    execution_id = uuid.uuid4()
    cause = Cause(NOW, execution_id, None)
    return Execution.request(execution_id, "alice", script("out hi"), cause)


Call = tuple[Callable[..., Any], tuple[Any, ...]]


async def one_turn(io: StoreThread, *calls: Call) -> list[Any]:
    """Run `calls` in one turn (they wait together behind a blocker); each call's result
    or exception, in order."""
    started, release = threading.Event(), threading.Event()

    def blocking() -> None:
        started.set()
        release.wait()

    turns = io.turns
    blocker = asyncio.ensure_future(io.run(blocking))
    await asyncio.to_thread(started.wait)
    futures = [asyncio.ensure_future(io.run(fn, *args)) for fn, args in calls]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(blocker, *futures, return_exceptions=True)
    assert io.turns == turns + 1, "the calls did not share one turn"
    return results[1:]


async def test_waiting_records_commit_together_in_order_and_durably(
    open_store: Opener, io: StoreThread
) -> None:
    store = await io.run(open_store)
    executions = [requested() for _ in range(10)]
    results = await one_turn(io, *((store.record, (e.collect_events(), [e])) for e in executions))
    positions = [p for result in results for p in result]
    assert len(positions) == 10 and positions == sorted(positions)
    await io.run(store.close)
    reopened = await io.run(open_store)
    stored = await io.run(reopened.read, 1, 100)
    assert [p for p, _ in stored] == positions
    assert [e.aggregate_id for _, e in stored] == [e.id for e in executions]
    await io.run(reopened.close)


async def test_a_conflicting_record_fails_alone(open_store: Opener, io: StoreThread) -> None:
    store = await io.run(open_store)
    first, twin, other = requested(), requested(), requested()
    await io.run(store.record, first.collect_events(), [], Tracking("coordinator/p0", 1))
    # The same aggregate version again, and a position already tracked: each conflicts.
    clash = Execution.request(first.id, "bob", script("out x"), Cause(NOW, first.id, None))
    others = other.collect_events()
    results = await one_turn(
        io,
        (store.record, (twin.collect_events(), [])),
        (store.record, (clash.collect_events(), [])),
        (store.record, (others, [], Tracking("coordinator/p0", 1))),
        (store.record, (others, [], Tracking("coordinator/p0", 2))),
    )
    assert isinstance(results[1], IntegrityError) and isinstance(results[2], IntegrityError)
    assert isinstance(results[0], list) and isinstance(results[3], list)
    stored = await io.run(store.read, 1, 100)
    assert [e.aggregate_id for _, e in stored] == [first.id, twin.id, other.id]
    assert await io.run(store.tracked, "coordinator/p0") == 2
    await io.run(store.close)


async def test_calls_in_a_turn_read_what_the_calls_before_them_wrote(
    open_store: Opener, io: StoreThread
) -> None:
    store = await io.run(open_store)
    execution = requested()
    events = execution.collect_events()
    results = await one_turn(
        io,
        (store.record, (events, [], Tracking("saga/p0", 7))),
        (store.events_of, (execution.id,)),
        (store.tracked, ("saga/p0",)),
        (store.max_position, ()),
    )
    positions, read, tracked, last = results
    assert [e.aggregate_id for e in read] == [execution.id]
    assert tracked == 7 and last == positions[-1]
    await io.run(store.close)


async def test_a_turn_whose_commit_fails_fails_all_its_calls_and_records_nothing(
    postgres: PostgresParams, io: StoreThread
) -> None:
    env = store_config("postgres", environ=postgres.env()).env
    store = await io.run(ExecutionStore, env)
    kept = requested()
    await io.run(store.record, kept.collect_events(), [kept])
    lost = [requested() for _ in range(3)]

    def cut_the_connection() -> None:
        # The server ends the turn's connection (a restart, a network cut) before it commits.
        turn = store.process_recorder.datastore._turn  # type: ignore[attr-defined]
        with psycopg.connect(postgres.conninfo(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (turn[1].info.backend_pid,))

    results = await one_turn(
        io,
        *((store.record, (e.collect_events(), [e])) for e in lost[:2]),
        (cut_the_connection, ()),
    )
    assert all(isinstance(result, StoreBusy) for result in results), results
    for execution in lost[:2]:
        assert await io.run(store.load, Execution, execution.id) is None  # not even cached
    # The next turn works on a fresh connection.
    await io.run(store.record, lost[2].collect_events(), [lost[2]])
    stored = await io.run(store.read, 1, 100)
    assert [e.aggregate_id for _, e in stored] == [kept.id, lost[2].id]
    await io.run(store.close)


async def test_a_turn_locks_the_events_table_once_and_again_after_a_conflict_undid_it(
    postgres: PostgresParams, io: StoreThread
) -> None:
    """Inserts after the first of a turn skip the table lock and NOTIFY (the transaction
    holds them), unless the savepoint that took them was rolled back: PostgreSQL then
    released the lock, and the next insert must take it again, or commits could interleave
    notification ids out of order."""
    env = store_config("postgres", environ=postgres.env()).env
    store = await io.run(ExecutionStore, env)
    first = requested()
    await io.run(store.record, first.collect_events(), [first])
    clash = Execution.request(first.id, "bob", script("out x"), Cause(NOW, first.id, None))
    one, two = requested(), requested()

    def locked() -> bool:
        """Whether another connection is kept from locking the events table now."""
        with psycopg.connect(postgres.conninfo(), autocommit=True) as other:
            try:
                with other.transaction():
                    name = store.process_recorder.events_table_name  # type: ignore[attr-defined]
                    table = psycopg.sql.Identifier(postgres.schema, name)
                    lock = psycopg.sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE NOWAIT")
                    other.execute(lock.format(table))
            except psycopg.errors.LockNotAvailable:
                return True
        return False

    heard = threading.Event()
    watch = store.watch(heard.set)
    assert watch is not None
    assert heard.wait(10)
    heard.clear()
    results = await one_turn(
        io,
        (store.record, (clash.collect_events(), [])),  # locks, conflicts, rolled back
        (locked, ()),
        (store.record, (one.collect_events(), [one])),
        (locked, ()),
        (store.record, (two.collect_events(), [two])),
    )
    assert isinstance(results[0], IntegrityError)
    assert results[1] is False and results[3] is True
    assert heard.wait(10)  # the turn's one NOTIFY reached a listener
    stored = await io.run(store.read, 1, 100)
    assert [e.aggregate_id for _, e in stored] == [first.id, one.id, two.id]
    await asyncio.to_thread(watch.stop)
    await io.run(store.close)


async def test_sqlite_never_reports_a_turn_that_sqlite_rolled_back_as_committed(
    tmp_path: Path, io: StoreThread
) -> None:
    store = await io.run(ExecutionStore, store_config("sqlite", tmp_path, environ={}).env)
    lost = [requested() for _ in range(2)]

    def lose_the_transaction() -> None:
        # What SQLite does on a full disk or an I/O error: the whole transaction is gone.
        turn = store.process_recorder.datastore._turn  # type: ignore[attr-defined]
        turn[1]._sqlite_conn.rollback()

    results = await one_turn(
        io,
        *((store.record, (e.collect_events(), [e])) for e in lost),
        (lose_the_transaction, ()),
    )
    assert all(isinstance(result, StoreBusy) for result in results), results
    assert await io.run(store.read, 1, 100) == []
    await io.run(store.close)
