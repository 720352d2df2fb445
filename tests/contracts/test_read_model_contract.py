"""Every read model passes the one contract: in memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from codeexec.adapters.memory_read_model import InMemoryExecutionReadModel
from codeexec.adapters.postgres_read_model import PostgresExecutionReadModel
from codeexec.adapters.read_model_queries import ReadModelQueries
from codeexec.adapters.sql_database import PostgresParams
from codeexec.adapters.sqlite_read_model import SQLiteExecutionReadModel
from codeexec.ports.read_model import ExecutionReadModel
from codeexec.testing.execution_queries import ExecutionQueriesContract, NewQueries
from codeexec.testing.read_model import ExecutionReadModelContract, SubmissionBoundContract


class TestInMemoryReadModel(ExecutionReadModelContract):
    @pytest.fixture
    def new_read_model(self) -> Callable[[], ExecutionReadModel]:
        return InMemoryExecutionReadModel


class TestSQLiteReadModel(ExecutionReadModelContract, SubmissionBoundContract):
    @pytest.fixture
    def new_read_model(self, tmp_path: Path) -> Iterator[Callable[[], ExecutionReadModel]]:
        opened: list[SQLiteExecutionReadModel] = []

        def new() -> ExecutionReadModel:
            opened.append(SQLiteExecutionReadModel(tmp_path / f"views{len(opened)}.sqlite3"))
            return opened[-1]

        yield new
        for model in opened:
            model.close()


@pytest.mark.integration
class TestPostgresReadModel(ExecutionReadModelContract, SubmissionBoundContract):
    @pytest.fixture
    def new_read_model(
        self, postgres: PostgresParams
    ) -> Iterator[Callable[[], ExecutionReadModel]]:
        opened: list[PostgresExecutionReadModel] = []

        def new() -> ExecutionReadModel:
            assert not opened, "one PostgreSQL read model per test schema"
            opened.append(PostgresExecutionReadModel(postgres))
            return opened[-1]

        yield new
        for model in opened:
            model.close()


class TestInMemoryQueries(ExecutionQueriesContract):
    @pytest.fixture
    def new_queries(self) -> NewQueries:
        def new() -> tuple[ExecutionReadModel, ReadModelQueries]:
            model = InMemoryExecutionReadModel()
            return model, ReadModelQueries(model)

        return new


class TestSQLiteQueriesInPlace(ExecutionQueriesContract):
    @pytest.fixture
    def new_queries(self, tmp_path: Path) -> Iterator[NewQueries]:
        opened: list[SQLiteExecutionReadModel] = []

        def new() -> tuple[ExecutionReadModel, ReadModelQueries]:
            opened.append(SQLiteExecutionReadModel(tmp_path / f"views{len(opened)}.sqlite3"))
            return opened[-1], ReadModelQueries(opened[-1])

        yield new
        for model in opened:
            model.close()


@pytest.mark.integration
class TestPostgresQueriesInAThread(ExecutionQueriesContract):
    @pytest.fixture
    def new_queries(self, postgres: PostgresParams) -> Iterator[NewQueries]:
        opened: list[PostgresExecutionReadModel] = []

        def new() -> tuple[ExecutionReadModel, ReadModelQueries]:
            assert not opened, "one PostgreSQL read model per test schema"
            opened.append(PostgresExecutionReadModel(postgres))
            return opened[-1], ReadModelQueries(opened[-1], in_thread=True)

        yield new
        for model in opened:
            model.close()


def test_a_table_made_before_the_stored_bytes_column_gets_it_filled(tmp_path: Path) -> None:
    from codeexec.testing.read_model import T0, Story, apply_all

    path = tmp_path / "views.sqlite3"
    model = SQLiteExecutionReadModel(path)
    story = Story()
    apply_all(model, story.record(story.finished("alice", 0), story.request("alice", 1)))
    want = model.submission_totals("alice", T0 - timedelta(1), T0 - timedelta(1))
    with model.db.write() as cur:
        cur.execute("ALTER TABLE execution_views DROP COLUMN stored_bytes")
    model.close()
    reopened = SQLiteExecutionReadModel(path)
    try:
        got = reopened.submission_totals("alice", T0 - timedelta(1), T0 - timedelta(1))
        assert got == want and got.stored_bytes > 0 and got.counted == 2
    finally:
        reopened.close()
