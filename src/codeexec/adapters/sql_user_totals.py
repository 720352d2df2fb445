"""SqlUserTotals: each user's totals beside the SQL read model's views, admission's one
indexed figure.

Per user: how many executions count toward the rate limit (all but rejected ones) and the
bytes they keep, over every execution the views hold, changed in the same transaction as
the views they are folded from, so the two never disagree. Being over all time, the figure
is at least any window's totals: admission admits on it (one primary-key read) while it fits
the limits, instead of summing the user's day of submissions on every submit."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from codeexec.adapters.sql_database import Cursor, SqlDatabase
from codeexec.ports.read_model import ExecutionView, SubmissionTotals

Kept = tuple[int, int]  # (counted toward the rate limit, bytes kept)


def kept(view: ExecutionView) -> Kept:
    return (0 if view.state == "rejected" else 1, view.stored_bytes)


def deltas(before: Mapping[UUID, Kept], changed: Mapping[UUID, ExecutionView]) -> dict[str, Kept]:
    """How each user's totals moved: `before` holds what the changed views kept before the
    fold (a view that is new kept nothing)."""
    moved: dict[str, Kept] = {}
    for key, view in changed.items():
        counted, stored = before.get(key, (0, 0))
        now_counted, now_stored = kept(view)
        was = moved.get(view.user_id, (0, 0))
        moved[view.user_id] = (was[0] + now_counted - counted, was[1] + now_stored - stored)
    return {user: move for user, move in moved.items() if move != (0, 0)}


class SqlUserTotals:
    def __init__(self, db: SqlDatabase, views: str) -> None:
        self.db, self.views, self.table = db, views, f"{views}_users"

    def create(self, cur: Cursor) -> None:
        """The table, filled from the views once when it is new (views from before it)."""
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (user_id TEXT PRIMARY KEY,"
            " counted BIGINT NOT NULL, stored_bytes BIGINT NOT NULL)"
        )
        cur.execute(f"SELECT 1 FROM {self.table} LIMIT 1")
        if cur.fetchone() is None:
            cur.execute(
                f"INSERT INTO {self.table} (user_id, counted, stored_bytes)"
                " SELECT user_id, SUM(CASE WHEN state <> 'rejected' THEN 1 ELSE 0 END),"
                f" SUM(stored_bytes) FROM {self.views} GROUP BY user_id"
            )

    def add(self, cur: Cursor, moved: Mapping[str, Kept]) -> None:
        if not moved:
            return
        t = self.table
        cur.executemany(
            self.db.sql(
                f"INSERT INTO {t} (user_id, counted, stored_bytes) VALUES (?, ?, ?)"
                f" ON CONFLICT (user_id) DO UPDATE SET counted = {t}.counted + excluded.counted,"
                f" stored_bytes = {t}.stored_bytes + excluded.stored_bytes"
            ),
            [(user, counted, stored) for user, (counted, stored) in moved.items()],
        )

    def read(self, user_id: str) -> SubmissionTotals:
        with self.db.read() as cur:
            cur.execute(
                self.db.sql(f"SELECT counted, stored_bytes FROM {self.table} WHERE user_id = ?"),
                (user_id,),
            )
            row = cur.fetchone()
        return SubmissionTotals(int(row[0]), int(row[1])) if row else SubmissionTotals(0, 0)
