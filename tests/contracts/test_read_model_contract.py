"""Every read model passes the one contract: in memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codeexec.adapters.memory_read_model import InMemoryExecutionReadModel
from codeexec.adapters.postgres_read_model import PostgresExecutionReadModel
from codeexec.adapters.sql_database import PostgresParams
from codeexec.adapters.sqlite_read_model import SQLiteExecutionReadModel
from codeexec.ports.read_model import ExecutionReadModel
from codeexec.testing.read_model import ExecutionReadModelContract


class TestInMemoryReadModel(ExecutionReadModelContract):
    @pytest.fixture
    def new_read_model(self) -> Callable[[], ExecutionReadModel]:
        return InMemoryExecutionReadModel


class TestSQLiteReadModel(ExecutionReadModelContract):
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
class TestPostgresReadModel(ExecutionReadModelContract):
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
