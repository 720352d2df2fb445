"""A shared store keeps no cache, but a writer that expects to write next (the worker
recording its run) may start from its own last write: a stale copy costs a conflict, never a
lost or doubled event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError

from codeexec.domain.aggregate import Cause
from codeexec.domain.execution import Execution
from codeexec.service.store import ExecutionStore
from codeexec.service.store_config import store_config
from codeexec.service.unit_of_work import UnitOfWork
from tests.unit.factories import script

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def two_processes(tmp_path: Path) -> tuple[ExecutionStore, ExecutionStore]:
    """Two stores on one SQLite file, neither caching: as two processes sharing a store."""
    env = store_config("sqlite", tmp_path, environ={}).env
    return ExecutionStore(env), ExecutionStore(env)


def running(store: ExecutionStore) -> Execution:
    execution_id = uuid.uuid4()
    cause = Cause(NOW, execution_id, None)
    execution = Execution.request(execution_id, "alice", script("out hi"), cause)
    execution.queue(cause, 1)
    execution.schedule(cause)
    execution.start(cause, "w1")
    store.record(execution.collect_events(), [execution])
    return execution


def test_the_own_copy_serves_its_writer_and_no_one_else(tmp_path: Path) -> None:
    worker, _ = two_processes(tmp_path)
    execution = running(worker)
    assert worker.load(Execution, execution.id, own_write=True) is execution  # no read
    fresh = worker.load(Execution, execution.id)  # any other use reads the store
    assert fresh is not None and fresh is not execution
    assert fresh.version == execution.version


def test_a_stale_own_copy_conflicts_and_the_retry_reads_what_others_wrote(
    tmp_path: Path,
) -> None:
    worker, saga = two_processes(tmp_path)
    execution = running(worker)
    other = saga.load(Execution, execution.id)
    assert other is not None
    other.time_out(Cause(NOW, execution.id, None))  # another process ends the run
    saga.record(other.collect_events(), [other])

    stale = UnitOfWork(worker, NOW)
    copy = stale.get(Execution, execution.id, own_write=True)
    assert copy is execution and not copy.is_terminal  # it has not seen the time-out
    copy.record_output(Cause(NOW, execution.id, None), "stdout", b"late\n", "run")
    with pytest.raises(IntegrityError):
        stale.commit()
    retry = UnitOfWork(worker, NOW)
    current = retry.get(Execution, execution.id, own_write=True)
    assert current is not None and current is not execution and current.is_terminal
    events = worker.events_of(execution.id)
    assert [e.aggregate_version for e in events] == list(range(1, len(events) + 1))
    assert not any(getattr(e, "data", None) == b"late\n" for e in events)
