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


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(**server_params().connect_kwargs(), autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresParams]:
    """A database of its own for this test session, dropped afterwards."""
    name = f"codeexec_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield server_params(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres(postgres_database: PostgresParams) -> Iterator[PostgresParams]:
    """A fresh schema in the session's database: each test starts with no tables."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**postgres_database.connect_kwargs(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')  # type: ignore[arg-type]
    yield replace(postgres_database, schema=schema)
