"""SqlUserTotals: each user's totals per minute beside the SQL read model's views, admission's
bounded figure.

Per user and minute of creation: how many executions count toward the rate limit (all but
rejected ones) and the bytes they keep, changed in the same transaction as the views they
are folded from, so the two never disagree. Summed from the minute a window starts in, they
are at least that window's totals: admission admits on them (one primary-key range read, at
most one row per minute of the window the user was active in) while they fit the limits,
instead of summing each of the user's submissions in the window on every submit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from codeexec.adapters.execution_fold import micros
from codeexec.adapters.sql_database import Cursor, SqlDatabase
from codeexec.ports.read_model import ExecutionView, SubmissionTotals

MINUTE_US = 60_000_000


def minute(at_micros: int) -> int:
    """The minute a time (in micros since the epoch) falls in."""
    return at_micros // MINUTE_US


Kept = tuple[int, int]  # (counted toward the rate limit, bytes kept)
Bucket = tuple[str, int]  # (user id, minute of creation)


def kept(view: ExecutionView) -> Kept:
    return (0 if view.state == "rejected" else 1, view.stored_bytes)


def bucket_of(view: ExecutionView) -> Bucket:
    return view.user_id, minute(micros(view.created_at))


def deltas(
    before: Mapping[UUID, Kept], changed: Mapping[UUID, ExecutionView]
) -> dict[Bucket, Kept]:
    """How each user's minute totals moved: `before` holds what the changed views kept
    before the fold (a view that is new kept nothing)."""
    moved: dict[Bucket, Kept] = {}
    for key, view in changed.items():
        counted, stored = before.get(key, (0, 0))
        now_counted, now_stored = kept(view)
        bucket = bucket_of(view)
        was = moved.get(bucket, (0, 0))
        moved[bucket] = (was[0] + now_counted - counted, was[1] + now_stored - stored)
    return {bucket: move for bucket, move in moved.items() if move != (0, 0)}


class SqlUserTotals:
    def __init__(self, db: SqlDatabase, views: str) -> None:
        self.db, self.views, self.table = db, views, f"{views}_users"

    def create(self, cur: Cursor) -> None:
        """The table, filled from the views once when it is new (views from before it)."""
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (user_id TEXT NOT NULL,"
            " minute BIGINT NOT NULL, counted BIGINT NOT NULL, stored_bytes BIGINT NOT NULL,"
            " PRIMARY KEY (user_id, minute))"
        )
        cur.execute(f"SELECT 1 FROM {self.table} LIMIT 1")
        if cur.fetchone() is None:
            by_minute = f"(created_at / {MINUTE_US})"  # whole micros: integer division
            cur.execute(
                f"INSERT INTO {self.table} (user_id, minute, counted, stored_bytes)"
                f" SELECT user_id, {by_minute},"
                " SUM(CASE WHEN state <> 'rejected' THEN 1 ELSE 0 END), SUM(stored_bytes)"
                f" FROM {self.views} GROUP BY user_id, {by_minute}"
            )

    def add(self, cur: Cursor, moved: Mapping[Bucket, Kept]) -> None:
        if not moved:
            return
        t = self.table
        cur.executemany(
            self.db.sql(
                f"INSERT INTO {t} (user_id, minute, counted, stored_bytes) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_id, minute) DO UPDATE SET"
                f" counted = {t}.counted + excluded.counted,"
                f" stored_bytes = {t}.stored_bytes + excluded.stored_bytes"
            ),
            [(user, at, counted, stored) for (user, at), (counted, stored) in moved.items()],
        )

    def read(self, user_id: str, rate_since: datetime, storage_since: datetime) -> SubmissionTotals:
        rate, storage = minute(micros(rate_since)), minute(micros(storage_since))
        with self.db.read() as cur:
            cur.execute(
                self.db.sql(
                    "SELECT COALESCE(SUM(CASE WHEN minute >= ? THEN counted ELSE 0 END), 0),"
                    " COALESCE(SUM(CASE WHEN minute >= ? THEN stored_bytes ELSE 0 END), 0)"
                    f" FROM {self.table} WHERE user_id = ? AND minute >= ?"
                ),
                (rate, storage, user_id, min(rate, storage)),
            )
            row = cur.fetchone()
        return SubmissionTotals(int(row[0]), int(row[1]))
