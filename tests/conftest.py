"""Fixtures every test directory may use: PostgreSQL (a fresh database per session)."""

from codeexec.testing.postgres import postgres, postgres_database

__all__ = ["postgres", "postgres_database"]
