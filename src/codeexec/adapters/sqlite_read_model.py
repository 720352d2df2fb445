"""SQLiteExecutionReadModel: the persisted read model in a SQLite file beside the events."""

from __future__ import annotations

from pathlib import Path

from codeexec.adapters.sql_database import SQLiteDatabase
from codeexec.adapters.sql_read_model import SqlExecutionReadModel


class SQLiteExecutionReadModel(SqlExecutionReadModel):
    """Survives restarts: the projections role resumes from its tracked position."""

    def __init__(self, path: Path, busy_timeout_s: float = 10.0) -> None:
        super().__init__(SQLiteDatabase(path, "execution read model", busy_timeout_s))
