"""The replay session aggregate: which events to re-emit, where to, and how far it got."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from codeexec.domain.aggregate import Aggregate, Cause, IllegalTransition
from codeexec.domain.envelope import DomainEvent
from codeexec.domain.operations_events import (
    ReplayCancelled,
    ReplayCompleted,
    ReplayFilter,
    ReplayPaused,
    ReplayProgressed,
    ReplayRequested,
    ReplayResumed,
)


class ReplayState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


def matches(filters: ReplayFilter, position: int, event: DomainEvent) -> bool:
    """Whether a stored event belongs to the replay's selection."""
    if position > filters.until_position:
        return False
    if filters.since is not None and event.time < filters.since:
        return False
    if filters.until is not None and event.time >= filters.until:
        return False
    if filters.event_types and event.type_name not in filters.event_types:
        return False
    if filters.execution_ids and event.execution_id not in filters.execution_ids:
        return False
    return filters.user_id is None or event.user_id == filters.user_id


class ReplaySession(Aggregate):
    """Progress is recorded per batch, so a restarted runner resumes after the last batch
    it recorded; events of that batch were published before the record."""

    created_by = (ReplayRequested,)

    def __init__(self, id: UUID, execution_id: UUID, user_id: str) -> None:
        super().__init__(id, execution_id, user_id)
        self.state = ReplayState.RUNNING
        self.filters = ReplayFilter()
        self.target_topic = ""
        self.batch_size = 500
        self.rate_per_s: float | None = None
        self.dry_run = False
        self.position = 0
        self.sent = self.skipped = self.failed = 0
        self.matched = 0
        self.created_at: datetime | None = None
        self.updated_at: datetime | None = None

    @classmethod
    def create(
        cls,
        session_id: UUID,
        admin: str,
        filters: ReplayFilter,
        target_topic: str,
        batch_size: int,
        rate_per_s: float | None,
        dry_run: bool,
        cause: Cause,
    ) -> ReplaySession:
        session = cls(session_id, session_id, admin)
        session._trigger(
            ReplayRequested,
            cause,
            filters=filters,
            target_topic=target_topic,
            batch_size=batch_size,
            rate_per_s=rate_per_s,
            dry_run=dry_run,
        )
        return session

    @property
    def finished(self) -> bool:
        return self.state in (ReplayState.COMPLETED, ReplayState.CANCELLED)

    @property
    def total(self) -> int:
        """Events to examine: the store's length when the session was created."""
        return self.filters.until_position

    @property
    def examined(self) -> int:
        return self.position

    def progress(
        self, cause: Cause, position: int, matched: int, sent: int, skipped: int, failed: int
    ) -> None:
        self._trigger(
            ReplayProgressed,
            cause,
            position=position,
            matched=matched,
            sent=sent,
            skipped=skipped,
            failed=failed,
        )

    def pause(self, cause: Cause, by: str) -> None:
        self._trigger(ReplayPaused, cause, by=by)

    def resume(self, cause: Cause, by: str) -> None:
        self._trigger(ReplayResumed, cause, by=by)

    def complete(self, cause: Cause) -> None:
        self._trigger(ReplayCompleted, cause, matched=self.matched)

    def cancel(self, cause: Cause, by: str) -> None:
        self._trigger(ReplayCancelled, cause, by=by)

    def apply(self, event: DomainEvent) -> None:
        self.updated_at = event.time
        if isinstance(event, ReplayRequested):
            self.created_at = event.time
            self.filters, self.target_topic = event.filters, event.target_topic
            self.batch_size, self.rate_per_s = event.batch_size, event.rate_per_s
            self.dry_run = event.dry_run
            return
        if self.finished:
            raise IllegalTransition(f"replay {self.id} is already {self.state}")
        if isinstance(event, ReplayProgressed):
            # A batch already in flight when the session was paused still counts.
            if event.position <= self.position:
                raise IllegalTransition(f"replay {self.id} cannot progress to {event.position}")
            self.position = event.position
            self.sent += event.sent
            self.skipped += event.skipped
            self.failed += event.failed
            self.matched += event.matched
        elif isinstance(event, ReplayPaused):
            self._require(ReplayState.RUNNING, "pause")
            self.state = ReplayState.PAUSED
        elif isinstance(event, ReplayResumed):
            self._require(ReplayState.PAUSED, "resume")
            self.state = ReplayState.RUNNING
        elif isinstance(event, ReplayCompleted):
            self.state = ReplayState.COMPLETED
        elif isinstance(event, ReplayCancelled):
            self.state = ReplayState.CANCELLED
        else:
            raise IllegalTransition(f"{event.type_name} is not a replay event")

    def _require(self, state: ReplayState, action: str) -> None:
        if self.state is not state:
            raise IllegalTransition(f"cannot {action} replay {self.id}: it is {self.state}")
