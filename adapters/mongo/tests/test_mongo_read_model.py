"""The Mongo read model passes the read-model contract every read model passes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from mongo_fixtures import mongo_env_fixture, mongo_server_fixture  # noqa: F401  (fixtures)

from codeexec.ports.execution_queries import ExecutionQueries
from codeexec.ports.read_model import ExecutionReadModel
from codeexec.testing.execution_queries import ExecutionQueriesContract, NewQueries
from codeexec.testing.read_model import ExecutionReadModelContract, NewReadModel
from codeexec_mongo.queries import MongoExecutionQueries
from codeexec_mongo.read_model import MongoExecutionReadModel
from codeexec_mongo.settings import MongoSettings


class TestMongoExecutionReadModel(ExecutionReadModelContract):
    @pytest.fixture
    def new_read_model(self, mongo_env: dict[str, str]) -> Iterator[NewReadModel]:
        opened: list[MongoExecutionReadModel] = []

        def new() -> MongoExecutionReadModel:
            settings = MongoSettings(mongo_env["MONGO_URL"], "r" + uuid.uuid4().hex[:16])
            opened.append(MongoExecutionReadModel(settings))
            return opened[-1]

        yield new
        for model in opened:
            model.close()


class TestMongoExecutionQueries(ExecutionQueriesContract):
    """The views read on pymongo's asyncio client answer as the sync read model does."""

    @pytest.fixture
    async def new_queries(self, mongo_env: dict[str, str]) -> AsyncIterator[NewQueries]:
        opened: list[tuple[MongoExecutionReadModel, MongoExecutionQueries]] = []

        def new() -> tuple[ExecutionReadModel, ExecutionQueries]:
            settings = MongoSettings(mongo_env["MONGO_URL"], "q" + uuid.uuid4().hex[:16])
            opened.append((MongoExecutionReadModel(settings), MongoExecutionQueries(settings)))
            return opened[-1]

        yield new
        for model, queries in opened:
            await queries.close()
            model.close()


async def test_no_submission_bound_is_kept_so_admission_counts_the_windows(
    mongo_env: dict[str, str],
) -> None:
    """Without multi-document transactions a total moved beside a view could be lost in a
    crash, and an undercount would admit too much: Mongo keeps none (SQL read models do)."""
    settings = MongoSettings(mongo_env["MONGO_URL"], "b" + uuid.uuid4().hex[:16])
    model, queries = MongoExecutionReadModel(settings), MongoExecutionQueries(settings)
    try:
        since = datetime(2026, 11, 30, tzinfo=UTC)
        assert model.submission_bound("alice", since, since) is None
        assert await queries.submission_bound("alice", since, since) is None
    finally:
        await queries.close()
        model.close()
