"""Admission policy: a user's rate limit and storage quota, decided before a submission is
recorded, so a refused one costs the store a digest and a size instead of its payload.

Pure: the caller passes the user's recent submissions (from the read model, which every
process serving the API has) and the time. The coordinator still applies the rate limit
to what is recorded: admission keeps payloads out of the store, the coordinator stays the
authority on what runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from codeexec.domain.aggregate import Aggregate, Cause, IllegalTransition
from codeexec.domain.coordinator import UserLimits
from codeexec.domain.events import DomainEvent, RejectionReason, SubmissionRefused
from codeexec.domain.model import RunSpec


@dataclass(frozen=True)
class RecentSubmission:
    """One of a user's executions as admission counts it."""

    created_at: datetime
    stored_bytes: int  # source, stdin and output it keeps in the store
    counted: bool  # counts toward the rate limit (everything but `rejected`)


@dataclass(frozen=True)
class Refusal:
    reason: RejectionReason
    limit: str  # the name of the limit in the limits document
    message: str
    retry_after_s: float | None  # None: waiting alone does not help
    too_large: bool = False  # the submission alone exceeds the quota


def lookback_s(limits: UserLimits) -> float:
    """How far back admission needs the user's submissions."""
    return max(limits.rate_window_s, limits.storage_window_s)


def admit(
    limits: UserLimits, recent: Sequence[RecentSubmission], size: int, now: datetime
) -> Refusal | None:
    """None to admit a submission of `size` payload bytes, else why not. `recent` holds the
    user's submissions created within `lookback_s(limits)` before `now`, oldest first.

    A refusal's `retry_after_s` is when the same submission would be admitted: both limits
    are checked at that time, so a retry after a rate-limit refusal is not then refused for
    the storage quota (or the other way round)."""
    refusal = _first_refusal(limits, recent, size, now)
    if refusal is None or refusal.retry_after_s is None:
        return refusal
    later = now + timedelta(seconds=refusal.retry_after_s)
    # Each step lets at least one submission leave a window, so this ends.
    while (blocked := _first_refusal(limits, recent, size, later)) is not None:
        if blocked.retry_after_s is None:
            return replace(refusal, retry_after_s=None)
        later += timedelta(seconds=blocked.retry_after_s)
    return replace(refusal, retry_after_s=(later - now).total_seconds())


def _first_refusal(
    limits: UserLimits, recent: Sequence[RecentSubmission], size: int, now: datetime
) -> Refusal | None:
    rate_start = now - timedelta(seconds=limits.rate_window_s)
    counted = [r.created_at for r in recent if r.counted and r.created_at > rate_start]
    if len(counted) >= limits.rate_limit:
        retry = None
        if limits.rate_limit > 0:
            # Room for one more once all but rate_limit - 1 of them left the window.
            retry = (counted[len(counted) - limits.rate_limit] - rate_start).total_seconds()
        message = f"rate limit of {limits.rate_limit} per {limits.rate_window_s:g}s exceeded"
        return Refusal(RejectionReason.RATE_LIMITED, "rate_limit", message, retry)
    quota, window = limits.storage_quota_bytes, limits.storage_window_s
    if size > quota:
        message = (
            f"the submission's {size} bytes of source and stdin exceed the storage quota "
            f"of {quota} bytes per {window:g}s"
        )
        return Refusal(RejectionReason.STORAGE_QUOTA, "storage_quota_bytes", message, None, True)
    storage_start = now - timedelta(seconds=window)
    kept = [r for r in recent if r.created_at > storage_start]
    used = sum(r.stored_bytes for r in kept)
    if used + size <= quota:
        return None
    excess, freed, retry_s = used + size - quota, 0, None
    for submission in kept:
        freed += submission.stored_bytes
        if freed >= excess:
            retry_s = (submission.created_at - storage_start).total_seconds()
            break
    message = (
        f"storage quota of {quota} bytes per {window:g}s exceeded: "
        f"{used} bytes kept, this submission needs {size}"
    )
    return Refusal(RejectionReason.STORAGE_QUOTA, "storage_quota_bytes", message, retry_s)


class RefusedSubmission(Aggregate):
    """The audit record of a refused submission: one event, no payload."""

    created_by = (SubmissionRefused,)

    @classmethod
    def record(
        cls,
        submission_id: UUID,
        user_id: str,
        spec: RunSpec,
        priority: int,
        digest: str,
        refusal: Refusal,
        cause: Cause,
    ) -> RefusedSubmission:
        refused = cls(submission_id, submission_id, user_id)
        refused._trigger(
            SubmissionRefused,
            cause,
            reason=refusal.reason,
            limit=refusal.limit,
            message=refusal.message,
            request_digest=digest,
            payload_bytes=spec.payload_bytes,
            language=spec.language,
            priority=priority,
        )
        return refused

    def apply(self, event: DomainEvent) -> None:
        if not isinstance(event, SubmissionRefused) or self.version != 0:
            raise IllegalTransition(f"a refused submission is one event, not {event.type_name}")
