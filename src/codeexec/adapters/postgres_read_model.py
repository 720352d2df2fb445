"""PostgresExecutionReadModel: the read model in the shared PostgreSQL database (psycopg 3).

Every API process reads the same table; the projections role keeps it. Needs the
`codeexec[postgres]` extra; this module is imported only when PostgreSQL is chosen."""

from __future__ import annotations

from codeexec.adapters.sql_database import PostgresDatabase, PostgresParams
from codeexec.adapters.sql_read_model import SqlExecutionReadModel


class PostgresExecutionReadModel(SqlExecutionReadModel):
    def __init__(self, params: PostgresParams) -> None:
        super().__init__(PostgresDatabase(params, "codeexec execution read model"))
