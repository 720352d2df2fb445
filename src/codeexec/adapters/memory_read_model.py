"""InMemoryExecutionReadModel: the execution projection held in dictionaries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from codeexec.domain.admission import RecentSubmission
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
from codeexec.ports.read_model import ExecutionQuery, ExecutionReadModel, ExecutionView, Page


class InMemoryExecutionReadModel(ExecutionReadModel):
    def __init__(self) -> None:
        self._views: dict[UUID, ExecutionView] = {}
        self._by_user: dict[str, list[UUID]] = {}
        self._all: list[UUID] = []
        self._counts: Counter[str] = Counter()

    def apply(self, event: DomainEvent, position: int | None = None) -> ExecutionView | None:
        if event.aggregate_id != event.execution_id:
            return None  # saga events do not change what users see
        view = self._views.get(event.execution_id)
        if isinstance(event, ExecutionRequested):
            if view is not None:
                return view
            view = ExecutionView(
                id=event.execution_id,
                user_id=event.user_id,
                language=event.spec.language,
                version=event.spec.version,
                priority=event.priority,
                state="requested",
                status="requested",
                created_at=event.time,
                updated_at=event.time,
                seq=position if position is not None else self._next_seq(),
                idempotency_key=event.idempotency_key,
                payload_bytes=event.spec.payload_bytes,
            )
            self._views[view.id] = view
            self._insert(self._by_user.setdefault(view.user_id, []), view)
            self._insert(self._all, view)
            self._counts["requested"] += 1
        elif view is None or event.aggregate_version <= view.version_seen:
            return view
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
            self._set_result(view, event.result)
            if isinstance(event, ExecutionFailed):
                view.message = event.reason
        if isinstance(event, ExecutionTimedOut):
            view.message = "no result before the deadline"
        if new_state is not None and new_state != view.state:
            self._counts[view.state] -= 1
            self._counts[new_state] += 1
            view.state = new_state
            if view.terminal:
                view.finished_at = event.time
        if after is not None:
            result = getattr(event, "result", None)
            view.status = status_of(after, result if isinstance(result, RunResult) else None)
        return view

    def _next_seq(self) -> int:
        return (self._views[self._all[-1]].seq + 1) if self._all else 1

    def _insert(self, ids: list[UUID], view: ExecutionView) -> None:
        """Keep ids ordered by seq even when events arrive out of order (partitions)."""
        index = len(ids)
        while index > 0 and self._views[ids[index - 1]].seq > view.seq:
            index -= 1
        ids.insert(index, view.id)

    @staticmethod
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

    def get(self, execution_id: UUID) -> ExecutionView | None:
        view = self._views.get(execution_id)
        return replace(view) if view is not None else None

    def list(self, query: ExecutionQuery) -> Page:
        ids: Sequence[UUID] = (
            self._all if query.user_id is None else self._by_user.get(query.user_id, [])
        )
        end = len(ids) if query.cursor is None else self._index_before(ids, query.cursor)
        items: list[ExecutionView] = []
        index = end - 1
        while index >= 0 and len(items) < query.limit:
            view = self._views[ids[index]]
            if self._matches(view, query):
                items.append(replace(view))
            index -= 1
        more = index >= 0 and len(items) == query.limit
        return Page(items=items, next_cursor=items[-1].seq if more and items else None)

    def _index_before(self, ids: Sequence[UUID], cursor: int) -> int:
        lo, hi = 0, len(ids)
        while lo < hi:  # ids are in increasing seq order
            mid = (lo + hi) // 2
            if self._views[ids[mid]].seq < cursor:
                lo = mid + 1
            else:
                hi = mid
        return lo

    @staticmethod
    def _matches(view: ExecutionView, query: ExecutionQuery) -> bool:
        if (
            query.statuses
            and view.status not in query.statuses
            and (view.state not in query.statuses)
        ):
            return False
        if query.language is not None and view.language != query.language:
            return False
        if query.created_after is not None and view.created_at <= query.created_after:
            return False
        return not (query.created_before is not None and view.created_at >= query.created_before)

    def recent_submissions(self, user_id: str, since: datetime) -> Sequence[RecentSubmission]:
        # A user's ids are in store order, which is submission order: walk back from the
        # newest and stop at the window's start instead of scanning the whole history.
        found: list[RecentSubmission] = []
        for execution_id in reversed(self._by_user.get(user_id, ())):
            view = self._views[execution_id]
            if view.created_at <= since:
                break
            found.append(
                RecentSubmission(view.created_at, view.stored_bytes, view.state != "rejected")
            )
        return found[::-1]

    def counts(self) -> Mapping[str, int]:
        return {state: n for state, n in self._counts.items() if n > 0}
