"""InMemoryExecutionReadModel: the execution projection held in dictionaries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import Tracking

from codeexec.adapters.execution_fold import fold, is_new, new_view, shown
from codeexec.domain.admission import RecentSubmission
from codeexec.domain.events import DomainEvent, ExecutionRequested
from codeexec.ports.read_model import (
    ExecutionQuery,
    ExecutionReadModel,
    ExecutionView,
    Page,
    SubmissionTotals,
)


class InMemoryExecutionReadModel(ExecutionReadModel):
    def __init__(self) -> None:
        self._views: dict[UUID, ExecutionView] = {}
        self._by_user: dict[str, list[UUID]] = {}
        self._all: list[UUID] = []
        self._counts: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._tracking: dict[str, int] = {}

    def apply(self, event: DomainEvent, position: int | None = None) -> ExecutionView | None:
        if not shown(event):
            return None
        view = self._views.get(event.execution_id)
        if isinstance(event, ExecutionRequested):
            if view is not None:
                return view
            view = new_view(event, position if position is not None else self._next_seq())
            self._views[view.id] = view
            self._insert(self._by_user.setdefault(view.user_id, []), view)
            self._insert(self._all, view)
            self._counts["requested"] += 1
            self._statuses[view.status] += 1
        elif view is None or not is_new(view, event):
            return view
        before, status = view.state, view.status
        fold(view, event)
        if view.state != before:
            self._counts[before] -= 1
            self._counts[view.state] += 1
        if view.status != status:
            self._statuses[status] -= 1
            self._statuses[view.status] += 1
        return view

    def apply_batch(
        self, events: Sequence[tuple[int, DomainEvent]], tracking: Tracking | None = None
    ) -> list[UUID]:
        floor = self.tracked(tracking.application_name) if tracking else 0
        changed: dict[UUID, None] = {}
        for position, event in events:
            if position <= floor:
                continue
            view = self._views.get(event.execution_id)
            version = view.version_seen if view is not None else 0
            after = self.apply(event, position)
            if after is not None and after.version_seen != version:
                changed[after.id] = None
        if tracking is not None:
            self._tracking[tracking.application_name] = max(floor, tracking.notification_id)
        return list(changed)

    def tracked(self, name: str) -> int:
        return self._tracking.get(name, 0)

    def _next_seq(self) -> int:
        return (self._views[self._all[-1]].seq + 1) if self._all else 1

    def _insert(self, ids: list[UUID], view: ExecutionView) -> None:
        """Keep ids ordered by seq even when events arrive out of order (partitions)."""
        index = len(ids)
        while index > 0 and self._views[ids[index - 1]].seq > view.seq:
            index -= 1
        ids.insert(index, view.id)

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

    def submission_totals(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals:
        counted = stored = 0
        since = min(rate_since, storage_since)
        for execution_id in reversed(self._by_user.get(user_id, ())):
            view = self._views[execution_id]
            if view.created_at <= since:
                break
            if view.created_at > rate_since and view.state != "rejected":
                counted += 1
            if view.created_at > storage_since:
                stored += view.stored_bytes
        return SubmissionTotals(counted, stored)

    def counts(self) -> Mapping[str, int]:
        return {state: n for state, n in self._counts.items() if n > 0}

    def status_counts(self) -> Mapping[str, int]:
        return {status: n for status, n in self._statuses.items() if n > 0}
