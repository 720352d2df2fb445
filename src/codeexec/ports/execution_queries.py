"""The execution queries port: what the API asks of the read model, awaited on the event loop.

The read model's own interface (`ExecutionReadModel`) is synchronous, because the projections
role writes it in the store's thread together with its tracking. What the API reads on every
request (a view, a listing, admission's totals) must not block the event loop on a network
round trip: a read model across the network answers these with an async driver, or in a
thread; a local one answers in place."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from uuid import UUID

from codeexec.domain.admission import RecentSubmission
from codeexec.ports.read_model import ExecutionQuery, ExecutionView, Page, SubmissionTotals

NOBODY = UUID(int=0)  # an execution id no one has: reading it is a real round trip


class ExecutionQueries(ABC):
    """The read side of `ExecutionReadModel`, as coroutines; same answers, same contract."""

    @abstractmethod
    async def get(self, execution_id: UUID) -> ExecutionView | None: ...

    @abstractmethod
    async def list(self, query: ExecutionQuery) -> Page:
        """Newest first, `query.limit` at a time; `next_cursor` continues the listing."""

    @abstractmethod
    async def counts(self) -> Mapping[str, int]:
        """Executions per state."""

    @abstractmethod
    async def status_counts(self) -> Mapping[str, int]:
        """Executions per status (see `ExecutionReadModel.status_counts`)."""

    @abstractmethod
    async def recent_submissions(self, user_id: str, since: datetime) -> Sequence[RecentSubmission]:
        """The user's executions created after `since`, oldest first (for admission)."""

    @abstractmethod
    async def submission_totals(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals:
        """Admission's two figures (see `ExecutionReadModel.submission_totals`)."""

    async def submission_bound(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals | None:
        """At least the windows' totals, or None (see `ExecutionReadModel.submission_bound`)."""
        return None

    async def ping(self) -> None:
        """One real round trip to the read model (readiness); raises if it does not answer."""
        await self.get(NOBODY)

    async def close(self) -> None:
        """Release connections of the queries' own (not the read model's)."""

    async def list_all(self) -> builtins.list[ExecutionView]:
        """Every execution, oldest first (admin tooling, tests)."""
        items: builtins.list[ExecutionView] = []
        cursor: int | None = None
        while True:
            page = await self.list(ExecutionQuery(cursor=cursor, limit=1000))
            items.extend(page.items)
            if page.next_cursor is None:
                return items[::-1]
            cursor = page.next_cursor
