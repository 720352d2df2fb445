"""The Execution aggregate and saga: legal lifecycles, illegal transitions, one terminal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeexec.domain.aggregate import Cause, IllegalTransition, project
from codeexec.domain.events import RejectionReason
from codeexec.domain.execution import OUTPUT_EVENT_MAX_BYTES, TERMINAL_STATES, Execution, State
from codeexec.domain.model import RunResult, SandboxStatus
from codeexec.domain.saga import ExecutionSaga
from tests.unit.factories import script

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def cause() -> Cause:
    return Cause(NOW, uuid4(), None)


def requested() -> Execution:
    return Execution.request(uuid4(), "alice", script("out hi"), cause())


def test_happy_path_reaches_completed_with_the_sandbox_status() -> None:
    execution = requested()
    execution.queue(cause(), 1)
    execution.schedule(cause())
    execution.start(cause(), "w")
    execution.record_output(cause(), "stdout", b"hi\n", "run")
    execution.finish(cause(), RunResult(status=SandboxStatus.RUNTIME_ERROR, exit_code=3))
    assert execution.state is State.COMPLETED
    events = execution.collect_events()
    assert [e.aggregate_version for e in events] == [1, 2, 3, 4, 5, 6]
    rebuilt = project(Execution, None, events)
    assert rebuilt is not None and rebuilt.state is State.COMPLETED and rebuilt.version == 6


def test_output_is_recorded_in_events_of_bounded_size_and_nothing_is_lost() -> None:
    execution = requested()
    execution.queue(cause(), 1)
    execution.schedule(cause())
    execution.start(cause(), "w")
    execution.collect_events()
    data = bytes(range(256)) * (OUTPUT_EVENT_MAX_BYTES // 256 * 3) + b"tail"
    execution.record_output(cause(), "stderr", data, "run")
    events = execution.collect_events()
    assert len(events) == 4
    assert all(len(e.data) <= OUTPUT_EVENT_MAX_BYTES for e in events)  # type: ignore[attr-defined]
    assert b"".join(e.data for e in events) == data  # type: ignore[attr-defined]
    assert {e.stream for e in events} == {"stderr"}  # type: ignore[attr-defined]


def test_sandbox_results_map_to_distinct_terminal_states() -> None:
    for status, state in [
        (SandboxStatus.CANCELLED, State.CANCELLED),
        (SandboxStatus.INTERNAL_ERROR, State.FAILED),
        (SandboxStatus.TIME_LIMIT_EXCEEDED, State.COMPLETED),
    ]:
        execution = requested()
        execution.queue(cause(), 1)
        execution.schedule(cause())
        execution.start(cause(), "w")
        execution.finish(cause(), RunResult(status=status))
        assert execution.state is state


def test_illegal_transitions_raise() -> None:
    execution = requested()
    with pytest.raises(IllegalTransition):
        execution.start(cause(), "w")
    execution.reject(cause(), RejectionReason.QUEUE_FULL, "full")
    with pytest.raises(IllegalTransition):
        execution.queue(cause(), 1)
    with pytest.raises(IllegalTransition):
        execution.cancel(cause())
    assert execution.request_cancel(cause(), "alice") is False


COMMANDS = [
    "queue",
    "reject",
    "schedule",
    "start",
    "output",
    "finish",
    "fail",
    "time_out",
    "cancel",
    "request_cancel",
]


@given(st.lists(st.sampled_from(COMMANDS), max_size=12))
def test_any_command_sequence_reaches_at_most_one_terminal_state(commands: list[str]) -> None:
    execution = requested()
    terminal_events = 0
    for command in commands:
        before = execution.state
        try:
            {
                "queue": lambda: execution.queue(cause(), 1),
                "reject": lambda: execution.reject(cause(), RejectionReason.INVALID, "x"),
                "schedule": lambda: execution.schedule(cause()),
                "start": lambda: execution.start(cause(), "w"),
                "output": lambda: execution.record_output(cause(), "stdout", b"x", "run"),
                "finish": lambda: execution.finish(
                    cause(), RunResult(status=SandboxStatus.SUCCEEDED)
                ),
                "fail": lambda: execution.fail(cause(), "x"),
                "time_out": lambda: execution.time_out(cause()),
                "cancel": lambda: execution.cancel(cause()),
                "request_cancel": lambda: execution.request_cancel(cause(), "a"),
            }[command]()
        except IllegalTransition:
            assert execution.state is before
            continue
        if before not in TERMINAL_STATES and execution.state in TERMINAL_STATES:
            terminal_events += 1
        if before in TERMINAL_STATES:
            assert execution.state is before
    assert terminal_events <= 1
    rebuilt = project(Execution, None, execution.collect_events())
    assert rebuilt is not None and rebuilt.state is execution.state


def test_saga_times_out_releases_once_and_never_acts_after_completion() -> None:
    execution = requested()
    execution.queue(cause(), 1)
    execution.schedule(cause())
    saga = ExecutionSaga.begin(execution, cause(), timedelta(seconds=5))
    assert saga.deadline is not None
    assert not saga.is_overdue(saga.deadline - timedelta(seconds=1))
    assert saga.is_overdue(saga.deadline)
    saga.on_deadline(execution, cause())
    assert execution.state is State.TIMED_OUT and saga.stop_requested
    assert saga.request_stop(cause(), "cancel") is False
    assert saga.compensate(cause(), "ExecutionTimedOut") is True
    assert saga.compensate(cause(), "ExecutionTimedOut") is False
    types = [e.type_name for e in saga.collect_events()]
    assert types == ["SagaStarted", "SandboxStopRequested", "SlotReleased", "SagaCompleted"]


def test_one_write_records_events_of_several_aggregates_in_the_order_they_happened() -> None:
    from codeexec.service.store import ExecutionStore
    from codeexec.service.unit_of_work import UnitOfWork

    store = ExecutionStore()
    first, second = requested(), requested()
    for execution in (first, second):
        execution.queue(cause(), 1)
        store.record(execution.collect_events(), [execution])
    uow = UnitOfWork(store, NOW)
    b = uow.get(Execution, second.id)  # touched first...
    a = uow.get(Execution, first.id)
    assert a is not None and b is not None
    a.cancel(cause())  # ...but changed second
    b.schedule(cause())
    assert [e.type_name for e in uow.commit()] == ["ExecutionCancelled", "ExecutionScheduled"]
    stored = [e.type_name for _, e in store.read(5, 10)]
    assert stored == ["ExecutionCancelled", "ExecutionScheduled"]


def test_a_lost_run_fails_with_the_output_it_recorded_compile_output_apart() -> None:
    execution = requested()
    execution.queue(cause(), 1)
    execution.schedule(cause())
    execution.start(cause(), "w")
    execution.record_output(cause(), "stderr", b"warning\n", "compile")
    execution.record_output(cause(), "stdout", b"\xff\x00bin", "run")
    execution.record_output(cause(), "stderr", b"late", "run")
    recorded = execution.collect_events()
    execution.lose(cause(), "sandbox lost: worker restarted", recorded)
    assert execution.state is State.FAILED
    result = execution.result
    assert result is not None and result.status is SandboxStatus.INTERNAL_ERROR
    assert (result.stdout, result.stderr) == (b"\xff\x00bin", b"late")
    assert result.compile_output == b"warning\n"
    assert not (result.stdout_truncated or result.stderr_truncated)
