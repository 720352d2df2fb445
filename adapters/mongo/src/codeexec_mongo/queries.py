"""MongoExecutionQueries: the API's reads of the execution views, on pymongo's asyncio client.

The projections role writes the views with the synchronous client (in the store's thread,
with its tracking); what an API process reads on every request (a view, a listing,
admission's totals, readiness) is awaited on `AsyncMongoClient`, so a slow or distant
server delays the requests that wait for it, never the event loop. The documents and
queries are the read model's own (`codeexec_mongo.read_model`): one layout, two clients."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from pymongo import DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from codeexec.domain.admission import RecentSubmission
from codeexec.ports.execution_queries import ExecutionQueries
from codeexec.ports.read_model import ExecutionQuery, ExecutionView, Page, SubmissionTotals
from codeexec_mongo.read_model import (
    COUNTS,
    STATUS_COUNTS,
    SUBMISSIONS_ORDER,
    counts_of,
    filter_of,
    page_of,
    submissions_of,
    submissions_query,
    totals_of,
    view_of,
)
from codeexec_mongo.recorders import translated_errors
from codeexec_mongo.settings import MongoSettings

Doc = dict[str, Any]


def async_database(settings: MongoSettings) -> tuple[AsyncMongoClient[Doc], AsyncDatabase[Doc]]:
    """A client of the asyncio API and the configured database with its concerns. The
    client binds to the event loop that first uses it: make it on that loop."""
    write_concern, read_concern = settings.concerns()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(settings.url, appname="codeexec")
    database = client.get_database(
        settings.db, write_concern=write_concern, read_concern=read_concern
    )
    return client, database


class MongoExecutionQueries(ExecutionQueries):
    def __init__(self, settings: MongoSettings, collection: str = "execution_views") -> None:
        self._settings, self._collection = settings, collection
        self._client: AsyncMongoClient[Doc] | None = None
        self._database: AsyncDatabase[Doc] | None = None

    @property
    def database(self) -> AsyncDatabase[Doc]:
        if self._database is None:  # on first use, on the loop that awaits it
            self._client, self._database = async_database(self._settings)
        return self._database

    @property
    def views(self) -> AsyncCollection[Doc]:
        return self.database[self._collection]

    async def get(self, execution_id: UUID) -> ExecutionView | None:
        with translated_errors():
            doc = await self.views.find_one({"_id": execution_id.hex})
        return None if doc is None else view_of(doc)

    async def list(self, query: ExecutionQuery) -> Page:
        with translated_errors():
            found = self.views.find(filter_of(query)).sort("seq", DESCENDING)
            return page_of(await found.limit(query.limit + 1).to_list(), query.limit)

    async def counts(self) -> Mapping[str, int]:
        with translated_errors():
            groups = await self.views.aggregate(COUNTS)
            return counts_of(await groups.to_list())

    async def status_counts(self) -> Mapping[str, int]:
        with translated_errors():
            groups = await self.views.aggregate(STATUS_COUNTS)
            return counts_of(await groups.to_list())

    async def recent_submissions(self, user_id: str, since: datetime) -> Sequence[RecentSubmission]:
        return submissions_of(await self._submissions(user_id, since))

    async def submission_totals(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals:
        found = await self._submissions(user_id, min(rate_since, storage_since))
        return totals_of(found, rate_since, storage_since)

    async def _submissions(self, user_id: str, since: datetime) -> builtins.list[Doc]:
        with translated_errors():
            found = self.views.find(*submissions_query(user_id, since)).sort(SUBMISSIONS_ORDER)
            return await found.to_list()

    async def ping(self) -> None:
        with translated_errors():
            await self.database.command("ping")

    async def close(self) -> None:
        client, self._client, self._database = self._client, None, None
        if client is not None:
            await client.close()
