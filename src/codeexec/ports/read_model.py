"""The read-model port: what users query about executions, kept by projections."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import Tracking

from codeexec.domain.admission import RecentSubmission
from codeexec.domain.events import DomainEvent
from codeexec.domain.execution import TERMINAL_STATES


def shown(event: DomainEvent) -> bool:
    """Whether an event changes what users see of its execution: saga events (another
    aggregate of the same execution) do not."""
    return event.aggregate_id == event.execution_id


@dataclass
class ExecutionView:
    """One execution as users see it. `status` is a lifecycle state while in flight, then
    the sandbox's terminal status (or `rejected`, `cancelled`, `internal_error`, ...)."""

    id: UUID
    user_id: str
    language: str
    version: str | None
    priority: int
    state: str
    status: str
    created_at: datetime
    updated_at: datetime
    seq: int = 0
    idempotency_key: str | None = None
    queued_at: datetime | None = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    signal: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    compile_output: bytes | None = None
    cpu_time_s: float | None = None
    wall_time_s: float | None = None
    memory_bytes: int | None = None
    message: str = ""
    cancel_requested: bool = False
    version_seen: int = 0
    events: int = 0
    payload_bytes: int = 0  # source files and stdin
    output_bytes: int = 0  # stdout, stderr and compile output, counted once

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATE_NAMES

    @property
    def stored_bytes(self) -> int:
        """What this execution counts against its user's storage quota."""
        return self.payload_bytes + self.output_bytes


TERMINAL_STATE_NAMES = frozenset(state.value for state in TERMINAL_STATES)


@dataclass(frozen=True)
class ExecutionQuery:
    user_id: str | None = None  # None: every user's (admin)
    statuses: frozenset[str] = frozenset()
    language: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    cursor: int | None = None  # list items older than this `seq`
    limit: int = 50


@dataclass(frozen=True)
class SubmissionTotals:
    """What admission's common case needs of a user's recent submissions."""

    counted: int  # in the rate window, toward the rate limit (everything but `rejected`)
    stored_bytes: int  # kept by those created in the storage window


@dataclass(frozen=True)
class Page:
    items: Sequence[ExecutionView]
    next_cursor: int | None = None
    extra: Mapping[str, object] = field(default_factory=dict)


class ExecutionReadModel(ABC):
    @abstractmethod
    def apply(self, event: DomainEvent, position: int | None = None) -> ExecutionView | None:
        """Fold one event in; idempotent (an event already seen changes nothing).
        `position` (the event's place in the store) orders listings the same way however
        the events arrive; without it, arrival order is used."""

    @abstractmethod
    def apply_batch(
        self, events: Sequence[tuple[int, DomainEvent]], tracking: Tracking | None = None
    ) -> builtins.list[UUID]:
        """Fold (position, event) pairs in, and record `tracking` (the projection's position
        in what it consumes) in the same write: all or nothing. Events at or below the
        position already tracked under that name are skipped, so a redelivered batch
        changes nothing and a crash never applies one twice. Returns the ids of the
        executions whose views changed."""

    def apply_partitions(
        self, parts: Sequence[tuple[Sequence[tuple[int, DomainEvent]], Tracking]]
    ) -> builtins.list[UUID]:
        """`apply_batch` for several (events, tracking) pairs at once, each pair's events
        skipped at or below its own tracked position: a projector's whole poll, over many
        partitions. A store that can does it in one write (all or nothing)."""
        changed: dict[UUID, None] = {}
        for events, tracking in parts:
            changed.update(dict.fromkeys(self.apply_batch(events, tracking)))
        return builtins.list(changed)

    @abstractmethod
    def tracked(self, name: str) -> int:
        """The last position recorded under `name` by `apply_batch` (0: none): where a
        projection resumes, instead of folding the history again."""

    @abstractmethod
    def get(self, execution_id: UUID) -> ExecutionView | None: ...

    @abstractmethod
    def list(self, query: ExecutionQuery) -> Page:
        """Newest first, `limit` at a time; `next_cursor` continues the listing."""

    def list_all(self) -> Sequence[ExecutionView]:
        """Every execution, oldest first."""
        items: builtins.list[ExecutionView] = []
        cursor: int | None = None
        while True:
            page = self.list(ExecutionQuery(cursor=cursor, limit=1000))
            items.extend(page.items)
            if page.next_cursor is None:
                return items[::-1]
            cursor = page.next_cursor

    @abstractmethod
    def counts(self) -> Mapping[str, int]:
        """Executions per state."""

    @abstractmethod
    def status_counts(self) -> Mapping[str, int]:
        """Executions per status: the lifecycle state while in flight, then the terminal
        status (`succeeded`, `time_limit`, `rejected`, ...), which `counts` folds into
        `completed`. Adapters answer it from their index on `status`."""

    def submission_bound(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals | None:
        """At least `submission_totals` for the same windows, from totals kept beside the
        views per stretch of time (an adapter's: the SQL ones keep them per minute, so
        each window is summed from the start of the minute it begins in). Admission admits
        on it while it fits both limits, and counts the windows exactly only when it does
        not. None: not kept here (admission counts the windows)."""
        return None

    def recent_submissions(self, user_id: str, since: datetime) -> Sequence[RecentSubmission]:
        """The user's executions created after `since`, oldest first (for admission)."""
        found: builtins.list[RecentSubmission] = []
        cursor: int | None = None
        while True:
            query = ExecutionQuery(user_id=user_id, created_after=since, cursor=cursor, limit=1000)
            page = self.list(query)
            found.extend(
                RecentSubmission(v.created_at, v.stored_bytes, v.state != "rejected")
                for v in page.items
            )
            if page.next_cursor is None:
                return sorted(found, key=lambda r: r.created_at)
            cursor = page.next_cursor

    def submission_totals(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals:
        """The user's count toward the rate limit since `rate_since` and bytes kept since
        `storage_since`: admission admits on these alone, and reads the submissions
        themselves only to say when a refused one may retry. Adapters answer it with an
        aggregate query."""
        recent = self.recent_submissions(user_id, min(rate_since, storage_since))
        return SubmissionTotals(
            sum(1 for r in recent if r.counted and r.created_at > rate_since),
            sum(r.stored_bytes for r in recent if r.created_at > storage_since),
        )
