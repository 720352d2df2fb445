"""How one event changes an execution's view: the fold every read model adapter shares."""

from __future__ import annotations

from collections import Counter
from collections.abc import MutableMapping, Sequence
from datetime import UTC, datetime
from uuid import UUID

from codeexec.domain.events import (
    DomainEvent,
    ExecutionCancelled,
    ExecutionCancelRequested,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionOutput,
    ExecutionQueued,
    ExecutionRejected,
    ExecutionRequested,
    ExecutionScheduled,
    ExecutionStarted,
    ExecutionTimedOut,
)
from codeexec.domain.execution import state_after, status_of
from codeexec.domain.model import RunResult
from codeexec.ports.read_model import ExecutionView
from codeexec.ports.read_model import shown as shown  # the read models fold what it shows


def new_view(event: ExecutionRequested, seq: int) -> ExecutionView:
    """The view an execution starts with; `fold` the request into it next."""
    return ExecutionView(
        id=event.execution_id,
        user_id=event.user_id,
        language=event.spec.language,
        version=event.spec.version,
        priority=event.priority,
        state="requested",
        status="requested",
        created_at=event.time,
        updated_at=event.time,
        seq=seq,
        idempotency_key=event.idempotency_key,
        payload_bytes=event.spec.payload_bytes,
    )


def is_new(view: ExecutionView, event: DomainEvent) -> bool:
    """Idempotence: an event at or below the version the view has seen changes nothing."""
    return event.aggregate_version > view.version_seen


def fold(view: ExecutionView, event: DomainEvent) -> None:
    """Apply one new event of the view's execution to it, in place."""
    view.version_seen = event.aggregate_version
    view.updated_at = event.time
    view.events += 1
    after = state_after(event)
    new_state = after.value if after is not None else None
    if isinstance(event, ExecutionQueued):
        view.queued_at = event.time
    elif isinstance(event, ExecutionScheduled):
        view.scheduled_at = event.time
    elif isinstance(event, ExecutionStarted):
        view.started_at = event.time
    elif isinstance(event, ExecutionCancelRequested):
        view.cancel_requested = True
    elif isinstance(event, ExecutionRejected):
        view.message = event.message
    elif isinstance(event, ExecutionOutput):
        view.output_bytes += len(event.data)
    if isinstance(
        event, ExecutionCompleted | ExecutionFailed | ExecutionCancelled | ExecutionTimedOut
    ):
        _set_result(view, event.result)
        if isinstance(event, ExecutionFailed):
            view.message = event.reason
    if isinstance(event, ExecutionTimedOut):
        view.message = "no result before the deadline"
    if new_state is not None and new_state != view.state:
        view.state = new_state
        if view.terminal:
            view.finished_at = event.time
    if after is not None:
        result = getattr(event, "result", None)
        view.status = status_of(after, result if isinstance(result, RunResult) else None)


def _set_result(view: ExecutionView, result: RunResult | None) -> None:
    if result is None:
        return
    # The result repeats the streamed output (cut at the same limits): count it once.
    kept = len(result.stdout) + len(result.stderr) + len(result.compile_output or b"")
    view.output_bytes = max(view.output_bytes, kept)
    view.exit_code, view.signal = result.exit_code, result.signal
    view.stdout, view.stderr = result.stdout, result.stderr
    view.stdout_truncated, view.stderr_truncated = (
        result.stdout_truncated,
        result.stderr_truncated,
    )
    view.compile_output = result.compile_output
    view.cpu_time_s, view.wall_time_s = result.cpu_time_s, result.wall_time_s
    view.memory_bytes = result.memory_bytes
    if result.message:
        view.message = result.message


def micros(at: datetime) -> int:
    """A time as whole microseconds since the epoch, UTC: how stored views keep times
    (exact, and sortable as integers in any database)."""
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """The time `micros` stored."""
    return datetime.fromtimestamp(value // 1_000_000, UTC).replace(microsecond=value % 1_000_000)


def fold_views(
    views: MutableMapping[UUID, ExecutionView], events: Sequence[tuple[int, DomainEvent]]
) -> tuple[dict[UUID, ExecutionView], Counter[str]]:
    """Fold (position, event) pairs into the loaded `views` (a request adds one): the views
    that changed, and how many executions entered (+) or left (-) each state."""
    changed: dict[UUID, ExecutionView] = {}
    moves: Counter[str] = Counter()
    for position, event in events:
        view = views.get(event.execution_id)
        if isinstance(event, ExecutionRequested):
            if view is not None:
                continue
            view = views[event.execution_id] = new_view(event, position)
            moves["requested"] += 1
        elif view is None or not is_new(view, event):
            continue
        before = view.state
        fold(view, event)
        if view.state != before:
            moves[before] -= 1
            moves[view.state] += 1
        changed[view.id] = view
    return changed, moves
