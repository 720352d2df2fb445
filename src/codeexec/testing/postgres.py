"""PostgreSQL fixtures: a fresh database per test session, a fresh schema per test.

The server is the one these machines run on 127.0.0.1:5432 (user postgres, trust auth);
CODEEXEC_TEST_POSTGRES_HOST/PORT/USER/PASSWORD point elsewhere. The database is created
when the session first asks for it and dropped at the end, with whatever connections are
left (`WITH (FORCE)`). A test that needs PostgreSQL fails when the server is unreachable:
it never skips. Use from a conftest.py:

    from codeexec.testing.postgres import postgres, postgres_database  # noqa: F401
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from codeexec.service.store_config import PostgresParams


def server_params(dbname: str = "postgres") -> PostgresParams:
    env = os.environ
    return PostgresParams(
        dbname=dbname,
        host=env.get("CODEEXEC_TEST_POSTGRES_HOST", "127.0.0.1"),
        port=int(env.get("CODEEXEC_TEST_POSTGRES_PORT", "5432")),
        user=env.get("CODEEXEC_TEST_POSTGRES_USER", "postgres"),
        password=env.get("CODEEXEC_TEST_POSTGRES_PASSWORD", ""),
    )


def _admin(statement: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_params().conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresParams]:
    """A database of its own for this test session, dropped afterwards."""
    name = f"codeexec_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _admin("CREATE DATABASE {}", name)
    try:
        yield server_params(name)
    finally:
        _admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


@pytest.fixture
def postgres(postgres_database: PostgresParams) -> Iterator[PostgresParams]:
    """A fresh schema in the session's database: each test starts with no tables."""
    import psycopg
    from psycopg import sql

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield replace(postgres_database, schema=schema)
