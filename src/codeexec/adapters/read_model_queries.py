"""ReadModelQueries: the execution queries of a synchronous read model.

A local read model (in memory, a SQLite file) answers in place: its reads take microseconds
and a hop to a thread would cost more than the read (bench/key_store_bench.py measured the
same trade for the key store: 25 us in place, 176 us through a thread). One across the
network (PostgreSQL) is asked in a worker thread, so a slow database delays that request,
not every request on the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from codeexec.domain.admission import RecentSubmission
from codeexec.ports.execution_queries import ExecutionQueries
from codeexec.ports.read_model import (
    ExecutionQuery,
    ExecutionReadModel,
    ExecutionView,
    Page,
    SubmissionTotals,
)

T = TypeVar("T")


class ReadModelQueries(ExecutionQueries):
    def __init__(self, model: ExecutionReadModel, *, in_thread: bool = False) -> None:
        self.model, self.in_thread = model, in_thread

    async def _ask(self, read: Callable[..., T], *args: object) -> T:
        if self.in_thread:
            return await asyncio.to_thread(read, *args)
        return read(*args)

    async def get(self, execution_id: UUID) -> ExecutionView | None:
        return await self._ask(self.model.get, execution_id)

    async def list(self, query: ExecutionQuery) -> Page:
        return await self._ask(self.model.list, query)

    async def counts(self) -> Mapping[str, int]:
        return await self._ask(self.model.counts)

    async def status_counts(self) -> Mapping[str, int]:
        return await self._ask(self.model.status_counts)

    async def recent_submissions(self, user_id: str, since: datetime) -> Sequence[RecentSubmission]:
        return await self._ask(self.model.recent_submissions, user_id, since)

    async def submission_totals(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals:
        return await self._ask(self.model.submission_totals, user_id, rate_since, storage_since)

    async def submission_bound(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals | None:
        return await self._ask(self.model.submission_bound, user_id, rate_since, storage_since)
