"""What only a persisted read model can promise: restarts, crashes, writers in two processes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError, Tracking

from codeexec.adapters.postgres_read_model import PostgresExecutionReadModel
from codeexec.adapters.sql_database import PostgresParams
from codeexec.adapters.sql_read_model import SqlExecutionReadModel
from codeexec.adapters.sqlite_read_model import SQLiteExecutionReadModel
from codeexec.ports.read_model import ExecutionQuery, SubmissionTotals
from codeexec.testing.read_model import T0, Story

EVER = T0 - timedelta(days=1)  # both windows from before any submission: every total

pytestmark = pytest.mark.integration

Open = Callable[[], SqlExecutionReadModel]


@pytest.fixture(params=["sqlite", "postgres"])
def open_model(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Open]:
    """Opens another read model on the same tables, as another process would."""
    opened: list[SqlExecutionReadModel] = []

    def new() -> SqlExecutionReadModel:
        if request.param == "sqlite":
            opened.append(SQLiteExecutionReadModel(tmp_path / "views.sqlite3"))
        else:
            params: PostgresParams = request.getfixturevalue("postgres")
            opened.append(PostgresExecutionReadModel(params))
        return opened[-1]

    yield new
    for model in opened:
        model.close()


class Crash(Exception):
    pass


def crashing(model: SqlExecutionReadModel) -> None:
    """The process dies after the views were written, before the transaction commits."""
    fold = model._fold

    def fold_then_crash(cur: Any, events: Any) -> Any:
        fold(cur, events)
        raise Crash

    model._fold = fold_then_crash  # type: ignore[method-assign]


def test_views_counts_and_tracking_survive_a_restart(open_model: Open) -> None:
    story = Story()
    executions = [story.finished("alice", n) for n in range(3)]
    first = open_model()
    first.apply_batch(story.record(*executions), Tracking("projections/e/0", story.position))
    first.close()
    again = open_model()
    assert again.tracked("projections/e/0") == story.position
    assert again.counts() == {"completed": 3}
    listed = again.list(ExecutionQuery(user_id="alice")).items
    assert [v.id for v in listed] == [e.id for e in reversed(executions)]


def test_a_crash_mid_batch_leaves_nothing_applied(open_model: Open) -> None:
    story = Story()
    model = open_model()
    done = story.finished("alice")
    events = story.record(done)
    model.apply_batch(events[:2], Tracking("p", 2))
    crashing(model)
    with pytest.raises(Crash):
        model.apply_batch(events, Tracking("p", story.position))
    survivor = open_model()
    assert survivor.tracked("p") == 2
    view = survivor.get(done.id)
    assert view is not None and view.state == "queued" and view.events == 2
    assert survivor.counts() == {"queued": 1}
    queued = survivor.submission_bound("alice", EVER, EVER)
    assert queued is not None and queued.counted == 1  # the crashed batch added nothing
    # The redelivered batch applies once, whoever takes it over.
    survivor.apply_batch(events, Tracking("p", story.position))
    view = survivor.get(done.id)
    assert view is not None and view.state == "completed" and view.events == 6
    assert survivor.submission_bound("alice", EVER, EVER) == SubmissionTotals(1, view.stored_bytes)


def test_two_projectors_of_one_partition_apply_a_batch_once(open_model: Open) -> None:
    story = Story()
    events = story.record(*[story.finished(f"u{n}", n) for n in range(20)])
    models = [open_model(), open_model()]
    barrier = threading.Barrier(2)

    def project(model: SqlExecutionReadModel) -> None:
        barrier.wait()
        for start in range(0, len(events), 10):
            batch = events[start : start + 10]
            model.apply_batch(batch, Tracking("projections/e/3", batch[-1][0]))

    threads = [threading.Thread(target=project, args=(m,)) for m in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert models[0].counts() == {"completed": 20}
    for n in range(20):  # each user's totals moved once, not once per projector
        bound = models[1].submission_bound(f"u{n}", EVER, EVER)
        assert bound is not None and bound.counted == 1
    assert all(v.events == 6 for v in models[1].list(ExecutionQuery(limit=100)).items)


def test_views_from_before_the_users_totals_fill_them_once(open_model: Open) -> None:
    story = Story()
    first = open_model()
    first.apply_batch(story.record(story.finished("alice"), story.request("alice", 5)))
    totals = first.submission_totals("alice", T0 - timedelta(1), T0 - timedelta(1))
    with first.db.write() as cur:  # as a table made before the totals were kept
        cur.execute(f"DROP TABLE {first.table}_users")
    first.close()
    again = open_model()
    assert again.submission_bound("alice", EVER, EVER) == totals and totals.counted == 2
    assert open_model().submission_bound("alice", EVER, EVER) == totals  # filled once, not again


def test_a_locked_sqlite_database_is_an_operational_error(tmp_path: Path) -> None:
    model = SQLiteExecutionReadModel(tmp_path / "views.sqlite3", busy_timeout_s=0.05)
    other = sqlite3.connect(tmp_path / "views.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    story = Story()
    with pytest.raises(OperationalError, match="execution read model"):
        model.apply_batch(story.record(story.request("alice")))
    other.execute("ROLLBACK")
    other.close()
    model.close()


def test_sqlite_listings_use_their_indexes(tmp_path: Path) -> None:
    model = SQLiteExecutionReadModel(tmp_path / "views.sqlite3")
    db = sqlite3.connect(tmp_path / "views.sqlite3")
    for query, index in (
        (ExecutionQuery(user_id="alice", cursor=10), "execution_views_user_seq"),
        (ExecutionQuery(user_id="a", language="ruby"), "execution_views_user_language_seq"),
        (ExecutionQuery(cursor=10), "execution_views_seq"),
    ):
        where, params = model._where(query)
        sql = f"EXPLAIN QUERY PLAN {model._select}{where} ORDER BY seq DESC LIMIT 51"
        plan = " ".join(str(row) for row in db.execute(sql, params))
        assert index in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # no sort: the index gives the order
    db.close()
    model.close()
