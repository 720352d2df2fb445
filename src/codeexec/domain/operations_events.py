"""Events of the operators' tools: replay sessions, dead letters and limits (admin audit trail)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from codeexec.domain.envelope import DomainEvent
from codeexec.domain.limits import LimitsDocument
from codeexec.domain.model import Bytes


class ReplayFilter(BaseModel):
    """Which stored events a replay selects; `until_position` pins the end when created,
    so a replay is finite and gives the same selection after a restart."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    since: datetime | None = None
    until: datetime | None = None
    event_types: tuple[str, ...] = ()
    execution_ids: tuple[UUID, ...] = ()
    user_id: str | None = None
    until_position: int = Field(default=0, ge=0)


class ReplayRequested(DomainEvent):
    type: Literal["ReplayRequested"] = "ReplayRequested"
    filters: ReplayFilter
    target_topic: str
    batch_size: int = Field(ge=1, le=10_000)
    rate_per_s: float | None = Field(default=None, gt=0)
    dry_run: bool = False


class ReplayProgressed(DomainEvent):
    """One batch done: `position` is the last store position examined; `matched` events
    were selected, `sent` of them published (none in a dry run), `skipped` not selected."""

    type: Literal["ReplayProgressed"] = "ReplayProgressed"
    position: int
    matched: int
    sent: int
    skipped: int
    failed: int


class ReplayPaused(DomainEvent):
    type: Literal["ReplayPaused"] = "ReplayPaused"
    by: str


class ReplayResumed(DomainEvent):
    type: Literal["ReplayResumed"] = "ReplayResumed"
    by: str


class ReplayCompleted(DomainEvent):
    type: Literal["ReplayCompleted"] = "ReplayCompleted"
    matched: int


class ReplayCancelled(DomainEvent):
    type: Literal["ReplayCancelled"] = "ReplayCancelled"
    by: str


class DeadLetterParked(DomainEvent):
    """A consumer kept failing on a message: everything needed to inspect and retry it."""

    type: Literal["DeadLetterParked"] = "DeadLetterParked"
    group: str
    original_topic: str
    partition: int
    offset: int
    key: str
    payload: Bytes
    headers: dict[str, str]
    event_type: str
    category: str
    error: str
    attempts: int


class DeadLetterRetryScheduled(DomainEvent):
    type: Literal["DeadLetterRetryScheduled"] = "DeadLetterRetryScheduled"
    attempt: int
    due_at: datetime


class DeadLetterRetried(DomainEvent):
    """Republished to its original topic, addressed to the group that failed on it."""

    type: Literal["DeadLetterRetried"] = "DeadLetterRetried"
    attempt: int
    by: str


class DeadLetterRetryFailed(DomainEvent):
    type: Literal["DeadLetterRetryFailed"] = "DeadLetterRetryFailed"
    attempt: int
    error: str
    exhausted: bool


class DeadLetterResolved(DomainEvent):
    """The retried message was processed (recorded atomically with its effects)."""

    type: Literal["DeadLetterResolved"] = "DeadLetterResolved"
    attempt: int


class DeadLetterDiscarded(DomainEvent):
    type: Literal["DeadLetterDiscarded"] = "DeadLetterDiscarded"
    by: str
    reason: str = ""


class DeadLetterArchived(DomainEvent):
    type: Literal["DeadLetterArchived"] = "DeadLetterArchived"
    by: str


class LimitsChanged(DomainEvent):
    """An admin replaced the limits: every coordinator applies them to its next decisions,
    every API process to admission and the per-run maxima."""

    type: Literal["LimitsChanged"] = "LimitsChanged"
    limits: LimitsDocument
    by: str
