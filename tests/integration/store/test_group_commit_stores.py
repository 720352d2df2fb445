"""Group commit on the real stores (SQLite file, PostgreSQL server): the store thread's
waiting calls are one database transaction, each call a savepoint of it."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial
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


def cut(postgres: PostgresParams, store: ExecutionStore) -> None:
    """The server ends the turn's connection (a restart, a network cut) before it commits."""
    turn = store.process_recorder.datastore._turn  # type: ignore[attr-defined]
    with psycopg.connect(postgres.conninfo(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (turn[1].info.backend_pid,))


async def test_a_turn_whose_commit_fails_fails_its_unsaved_calls_and_records_nothing_of_them(
    postgres: PostgresParams, io: StoreThread
) -> None:
    """On PostgreSQL an insert of events commits the turn's transaction with it (so the
    events table's lock is held for the server's part alone): the calls up to it are
    recorded and answered. What the turn wrote after it (here a tracking record) is lost
    with the turn's connection, and only the calls since then fail."""
    env = store_config("postgres", environ=postgres.env()).env
    store = await io.run(ExecutionStore, env)
    kept, saved = requested(), requested()
    await io.run(store.record, kept.collect_events(), [kept])
    results = await one_turn(
        io,
        (store.record, (saved.collect_events(), [saved])),
        (store.record, ([], (), Tracking("saga/p0", 3))),
        (cut, (postgres, store)),
    )
    assert isinstance(results[0], list) and len(results[0]) == 1
    assert all(isinstance(result, StoreBusy) for result in results[1:]), results
    assert await io.run(store.tracked, "saga/p0") == 0
    # The next turn works on a fresh connection.
    stored = await io.run(store.read, 1, 100)
    assert [e.aggregate_id for _, e in stored] == [kept.id, saved.id]
    await io.run(store.close)


async def test_an_insert_whose_commit_fails_fails_the_turn_and_records_nothing(
    postgres: PostgresParams, io: StoreThread
) -> None:
    env = store_config("postgres", environ=postgres.env()).env
    store = await io.run(ExecutionStore, env)
    kept = requested()
    await io.run(store.record, kept.collect_events(), [kept])
    lost = [requested() for _ in range(3)]
    results = await one_turn(
        io,
        (store.record, ([], (), Tracking("saga/p0", 3))),
        (cut, (postgres, store)),
        *((store.record, (e.collect_events(), [e])) for e in lost[:2]),
    )
    assert all(isinstance(result, StoreBusy) for result in results), results
    for execution in lost[:2]:
        assert await io.run(store.load, Execution, execution.id) is None  # not even cached
    # The next turn works on a fresh connection.
    await io.run(store.record, lost[2].collect_events(), [lost[2]])
    stored = await io.run(store.read, 1, 100)
    assert [e.aggregate_id for _, e in stored] == [kept.id, lost[2].id]
    assert await io.run(store.tracked, "saga/p0") == 0
    await io.run(store.close)


def events_table_locked(postgres: PostgresParams, store: ExecutionStore) -> bool:
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


def committed_positions(postgres: PostgresParams, store: ExecutionStore) -> list[int]:
    """The positions another connection sees committed."""
    name = store.process_recorder.events_table_name  # type: ignore[attr-defined]
    table = psycopg.sql.Identifier(postgres.schema, name)
    query = psycopg.sql.SQL("SELECT notification_id FROM {} ORDER BY 1").format(table)
    with psycopg.connect(postgres.conninfo(), autocommit=True) as other:
        return [row[0] for row in other.execute(query).fetchall()]


async def test_an_insert_of_events_commits_the_turn_so_far_and_leaves_the_table_unlocked(
    postgres: PostgresParams, io: StoreThread
) -> None:
    """The events table's lock (taken for each insert of events, so that positions commit
    in order) lasts only as long as the server takes to insert and commit: the insert
    commits the turn's transaction in the same round trip. Writers elsewhere are never
    kept waiting while this process runs its turn's other calls; a conflict still fails
    alone; what a turn wrote before the insert (a tracking record) commits with it; the
    turn's later calls write and read in a new transaction of the same turn."""
    env = store_config("postgres", environ=postgres.env()).env
    store = await io.run(ExecutionStore, env)
    first = requested()
    await io.run(store.record, first.collect_events(), [first])
    clash = Execution.request(first.id, "bob", script("out x"), Cause(NOW, first.id, None))
    one, two = requested(), requested()
    locked = partial(events_table_locked, postgres, store)
    seen = partial(committed_positions, postgres, store)

    heard = threading.Event()
    watch = store.watch(heard.set)
    assert watch is not None
    assert heard.wait(10)
    heard.clear()
    results = await one_turn(
        io,
        (store.record, ([], (), Tracking("saga/p0", 5))),
        (store.record, (clash.collect_events(), [])),  # locks, conflicts, rolled back
        (locked, ()),
        (store.record, (one.collect_events(), [one])),
        (locked, ()),
        (seen, ()),
        (store.tracked, ("saga/p0",)),
        (store.record, (two.collect_events(), [two], Tracking("saga/p0", 6))),
        (seen, ()),
        (store.events_of, (two.id,)),
    )
    assert isinstance(results[1], IntegrityError)
    assert results[2] is False and results[4] is False
    positions_one, positions_two = results[3], results[7]
    assert results[5] == [*(await io.run(store.read, 1, 1))[0][:1], *positions_one]
    assert results[6] == 5
    assert results[8] == [*results[5], *positions_two]
    assert [e.aggregate_id for e in results[9]] == [two.id]
    assert heard.wait(10)  # the NOTIFY reached a listener
    stored = await io.run(store.read, 1, 100)
    assert [e.aggregate_id for _, e in stored] == [first.id, one.id, two.id]
    assert [p for p, _ in stored] == sorted(p for p, _ in stored)
    assert await io.run(store.tracked, "saga/p0") == 6
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
