"""SqlExecutionReadModel: execution views in one SQL table, kept by the projections role.

One row per execution: the columns the API filters and orders on (user, seq, state,
status, language, creation time), the output as binary columns, the rest as a JSON body.
A batch of events is folded in one transaction together with the projection's tracking
position and the per-state counts, so readers never see half a batch, a redelivered batch
changes nothing and a crash never applies one twice. Writers exclude each other (see
SqlDatabase), readers never wait for them."""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking

from codeexec.adapters.execution_fold import fold_views, from_micros, micros, shown
from codeexec.adapters.sql_database import Cursor, SqlDatabase
from codeexec.adapters.sql_user_totals import SqlUserTotals, deltas, kept
from codeexec.domain.admission import RecentSubmission
from codeexec.domain.events import DomainEvent
from codeexec.ports.read_model import (
    ExecutionQuery,
    ExecutionReadModel,
    ExecutionView,
    Page,
    SubmissionTotals,
)

COLUMNS = "id, seq, user_id, language, state, status, created_at, stdout, stderr, compile_output"
INDEXED = frozenset(c.strip() for c in COLUMNS.split(","))
BODY = tuple(f.name for f in fields(ExecutionView) if f.name not in INDEXED)
TIMES = frozenset(
    f.name for f in fields(ExecutionView) if "datetime" in str(f.type) and f.name in BODY
)
IN_BATCH = 500  # ids per `IN (...)` when loading the views a batch touches


def _row(view: ExecutionView) -> tuple[Any, ...]:
    body = {}
    for name in BODY:
        value = getattr(view, name)
        body[name] = micros(value) if name in TIMES and value is not None else value
    return (
        view.id.hex,
        view.seq,
        view.user_id,
        view.language,
        view.state,
        view.status,
        micros(view.created_at),
        view.stdout,
        view.stderr,
        view.compile_output,
        json.dumps(body, separators=(",", ":")),
        view.stored_bytes,
    )


def _view(row: Sequence[Any]) -> ExecutionView:
    body = json.loads(row[10])
    for name in TIMES:
        if body.get(name) is not None:
            body[name] = from_micros(body[name])
    return ExecutionView(
        id=UUID(row[0]),
        seq=row[1],
        user_id=row[2],
        language=row[3],
        state=row[4],
        status=row[5],
        created_at=from_micros(row[6]),
        stdout=bytes(row[7]),
        stderr=bytes(row[8]),
        compile_output=bytes(row[9]) if row[9] is not None else None,
        **body,
    )


class SqlExecutionReadModel(ExecutionReadModel):
    def __init__(self, db: SqlDatabase, table: str = "execution_views") -> None:
        self.db, self.table = db, table
        self._tracking, self._counts = f"{table}_tracking", f"{table}_counts"
        self._select = f"SELECT {COLUMNS}, body FROM {table}"
        self._users = SqlUserTotals(db, table)
        self._create()

    def _create(self) -> None:
        t = self.table
        with self.db.write() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, seq BIGINT NOT NULL,"
                " user_id TEXT NOT NULL, language TEXT NOT NULL, state TEXT NOT NULL,"
                f" status TEXT NOT NULL, created_at BIGINT NOT NULL, stdout {self.db.blob}"
                f" NOT NULL, stderr {self.db.blob} NOT NULL, compile_output {self.db.blob},"
                " body TEXT NOT NULL, stored_bytes BIGINT NOT NULL DEFAULT 0)"
            )
            self._add_stored_bytes(cur)
            for name, columns in (
                ("seq", "seq"),  # every user's, newest first (admin)
                ("user_seq", "user_id, seq"),  # one user's, newest first
                ("user_status_seq", "user_id, status, seq"),
                ("user_language_seq", "user_id, language, seq"),
                ("status_seq", "status, seq"),
                ("user_created", "user_id, created_at"),  # admission's recent submissions
            ):
                cur.execute(f"CREATE INDEX IF NOT EXISTS {t}_{name} ON {t} ({columns})")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._tracking}"
                " (name TEXT PRIMARY KEY, position BIGINT NOT NULL)"
            )
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._counts}"
                " (state TEXT PRIMARY KEY, n BIGINT NOT NULL)"
            )
            self._users.create(cur)

    def _add_stored_bytes(self, cur: Cursor) -> None:
        """A table made before admission read `stored_bytes` as a column gets it now,
        filled from the bodies (once)."""
        cur.execute(f"SELECT * FROM {self.table} LIMIT 0")
        if "stored_bytes" in {c[0] for c in cur.description}:
            return
        cur.execute(f"ALTER TABLE {self.table} ADD COLUMN stored_bytes BIGINT NOT NULL DEFAULT 0")
        cur.execute(f"SELECT id, body FROM {self.table}")
        sizes = []
        for execution_id, body in cur.fetchall():
            doc = json.loads(body)
            sizes.append((doc["payload_bytes"] + doc["output_bytes"], execution_id))
        cur.executemany(
            self.db.sql(f"UPDATE {self.table} SET stored_bytes = ? WHERE id = ?"), sizes
        )

    # -- writing ------------------------------------------------------------------------------

    def apply(self, event: DomainEvent, position: int | None = None) -> ExecutionView | None:
        if not shown(event):
            return None
        with self.db.write() as cur:
            if position is None:
                cur.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {self.table}")
                position = int(cur.fetchone()[0])
            views = self._fold(cur, [(position, event)])
        return views.get(event.execution_id) or self.get(event.execution_id)

    def apply_batch(
        self, events: Sequence[tuple[int, DomainEvent]], tracking: Tracking | None = None
    ) -> builtins.list[UUID]:
        if tracking is not None:
            return self.apply_partitions([(events, tracking)])
        with self.db.write() as cur:
            changed = self._fold(cur, events)
        return builtins.list(changed)

    def apply_partitions(
        self, parts: Sequence[tuple[Sequence[tuple[int, DomainEvent]], Tracking]]
    ) -> builtins.list[UUID]:
        """One transaction for a whole poll: the trackings read in one query, the views
        loaded and written once, however many partitions the poll spans."""
        if not parts:
            return []
        with self.db.write() as cur:
            floors = self._tracked_many(cur, [t.application_name for _, t in parts])
            events: list[tuple[int, DomainEvent]] = []
            moved: list[tuple[str, int]] = []
            for part, tracking in parts:
                floor = floors.get(tracking.application_name, 0)
                events += [(p, e) for p, e in part if p > floor]
                if tracking.notification_id > floor:
                    moved.append((tracking.application_name, tracking.notification_id))
            events.sort(key=lambda pair: pair[0])  # one execution's events stay in order
            changed = self._fold(cur, events)
            if moved:
                cur.executemany(
                    self.db.sql(
                        f"INSERT INTO {self._tracking} (name, position) VALUES (?, ?)"
                        " ON CONFLICT (name) DO UPDATE SET position = excluded.position"
                    ),
                    moved,
                )
        return builtins.list(changed)

    def _tracked_many(self, cur: Cursor, names: Sequence[str]) -> dict[str, int]:
        marks = ", ".join("?" * len(names))
        cur.execute(
            self.db.sql(f"SELECT name, position FROM {self._tracking} WHERE name IN ({marks})"),
            builtins.list(names),
        )
        return {name: int(position) for name, position in cur.fetchall()}

    def _fold(
        self, cur: Cursor, events: Sequence[tuple[int, DomainEvent]]
    ) -> dict[UUID, ExecutionView]:
        events = [(p, e) for p, e in events if shown(e)]
        if not events:
            return {}
        views = self._load(cur, {e.execution_id for _, e in events})
        before = {key: kept(view) for key, view in views.items()}
        changed, moves = fold_views(views, events)
        names = ", ".join(c.strip() for c in COLUMNS.split(",")) + ", body, stored_bytes"
        updates = ", ".join(f"{c} = excluded.{c}" for c in names.split(", ")[1:])
        cur.executemany(
            self.db.sql(
                f"INSERT INTO {self.table} ({names}) VALUES ({', '.join('?' * 12)})"
                f" ON CONFLICT (id) DO UPDATE SET {updates}"
            ),
            [_row(view) for view in changed.values()],
        )
        user_moves = deltas(before, changed)
        counts = [(state, n) for state, n in moves.items() if n]
        if counts:
            cur.executemany(
                self.db.sql(
                    f"INSERT INTO {self._counts} (state, n) VALUES (?, ?)"
                    f" ON CONFLICT (state) DO UPDATE SET n = {self._counts}.n + excluded.n"
                ),
                counts,
            )
        self._users.add(cur, user_moves)
        return changed

    def _load(self, cur: Cursor, ids: set[UUID]) -> dict[UUID, ExecutionView]:
        found: dict[UUID, ExecutionView] = {}
        keys = [i.hex for i in ids]
        for start in range(0, len(keys), IN_BATCH):
            chunk = keys[start : start + IN_BATCH]
            marks = ", ".join("?" * len(chunk))
            cur.execute(self.db.sql(f"{self._select} WHERE id IN ({marks})"), chunk)
            for row in cur.fetchall():
                view = _view(row)
                found[view.id] = view
        return found

    def _tracked(self, cur: Cursor, name: str) -> int:
        cur.execute(self.db.sql(f"SELECT position FROM {self._tracking} WHERE name = ?"), (name,))
        row = cur.fetchone()
        return int(row[0]) if row else 0

    # -- reading ------------------------------------------------------------------------------

    def tracked(self, name: str) -> int:
        with self.db.read() as cur:
            return self._tracked(cur, name)

    def get(self, execution_id: UUID) -> ExecutionView | None:
        with self.db.read() as cur:
            cur.execute(self.db.sql(f"{self._select} WHERE id = ?"), (execution_id.hex,))
            row = cur.fetchone()
        return _view(row) if row else None

    def list(self, query: ExecutionQuery) -> Page:
        where, params = self._where(query)
        sql = f"{self._select}{where} ORDER BY seq DESC LIMIT ?"
        with self.db.read() as cur:
            cur.execute(self.db.sql(sql), (*params, query.limit + 1))
            rows = cur.fetchall()
        items = [_view(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return Page(items=items, next_cursor=items[-1].seq if more and items else None)

    @staticmethod
    def _where(query: ExecutionQuery) -> tuple[str, builtins.list[Any]]:
        clauses: builtins.list[str] = []
        params: builtins.list[Any] = []
        if query.user_id is not None:
            clauses.append("user_id = ?")
            params.append(query.user_id)
        if query.cursor is not None:
            clauses.append("seq < ?")
            params.append(query.cursor)
        if query.statuses:
            marks = ", ".join("?" * len(query.statuses))
            clauses.append(f"(status IN ({marks}) OR state IN ({marks}))")
            params += sorted(query.statuses) * 2
        if query.language is not None:
            clauses.append("language = ?")
            params.append(query.language)
        if query.created_after is not None:
            clauses.append("created_at > ?")
            params.append(micros(query.created_after))
        if query.created_before is not None:
            clauses.append("created_at < ?")
            params.append(micros(query.created_before))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def recent_submissions(self, user_id: str, since: datetime) -> Sequence[RecentSubmission]:
        with self.db.read() as cur:
            cur.execute(
                self.db.sql(
                    f"SELECT created_at, state, stored_bytes FROM {self.table}"
                    " WHERE user_id = ? AND created_at > ? ORDER BY created_at, seq"
                ),
                (user_id, micros(since)),
            )
            rows = cur.fetchall()
        return [
            RecentSubmission(from_micros(at), int(n), state != "rejected") for at, state, n in rows
        ]

    def submission_totals(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals:
        rate, storage = micros(rate_since), micros(storage_since)
        with self.db.read() as cur:
            cur.execute(
                self.db.sql(
                    "SELECT COALESCE(SUM(CASE WHEN created_at > ? AND state <> 'rejected'"
                    " THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN created_at > ?"
                    f" THEN stored_bytes ELSE 0 END), 0) FROM {self.table}"
                    " WHERE user_id = ? AND created_at > ?"
                ),
                (rate, storage, user_id, min(rate, storage)),
            )
            counted, stored = cur.fetchone()
        return SubmissionTotals(int(counted), int(stored))

    def submission_bound(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals:
        return self._users.read(user_id, rate_since, storage_since)

    def counts(self) -> Mapping[str, int]:
        with self.db.read() as cur:
            cur.execute(f"SELECT state, n FROM {self._counts} WHERE n > 0")
            return {state: int(n) for state, n in cur.fetchall()}

    def status_counts(self) -> Mapping[str, int]:
        with self.db.read() as cur:
            # Answered from the (status, seq) index, never the rows' bodies.
            cur.execute(f"SELECT status, COUNT(*) FROM {self.table} GROUP BY status")
            return {status: int(n) for status, n in cur.fetchall()}

    def close(self) -> None:
        self.db.close()
