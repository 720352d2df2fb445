"""Admission control for `Codeexec.submit`: refuses what the user's rate limit or storage
quota forbids before the request is recorded, keeping only an audit record of it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from codeexec.domain.admission import (
    RecentSubmission,
    Refusal,
    RefusedSubmission,
    admit,
    lookback_s,
)
from codeexec.domain.aggregate import Cause
from codeexec.domain.coordinator import UserLimits
from codeexec.domain.model import RunSpec
from codeexec.ports.execution_queries import ExecutionQueries
from codeexec.ports.read_model import SubmissionTotals
from codeexec.service.store import ExecutionStore
from codeexec.service.unshown import UserUnshown


class AdmissionRefused(Exception):
    """The submission was refused (rate limit or storage quota); nothing of its payload was
    stored. `refusal.limit` names the limit, `refusal.retry_after_s` says when to retry
    (None: not by waiting), `refusal.too_large` that it can never fit the quota."""

    def __init__(self, refusal: Refusal, submission_id: UUID) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal
        self.submission_id = submission_id


class Admission:
    """Counts from the read model (kept wherever the API runs), not from the coordinator's
    memory, so the check works the same when the roles run in other processes."""

    def __init__(
        self,
        store: ExecutionStore,
        queries: ExecutionQueries,
        limits_for: Callable[[str], UserLimits],
    ) -> None:
        self._store, self._queries, self._limits_for = store, queries, limits_for

    async def refusal(
        self,
        user_id: str,
        spec: RunSpec,
        now: datetime,
        pending: Sequence[RecentSubmission] = (),
        unshown: UserUnshown | None = None,
    ) -> Refusal | None:
        """None to admit, else why not. Reads the read model only (awaited);
        `pending` are the user's submissions on their way into the store and `unshown`
        those recorded that it may not show yet: they count too. It admits on a bound of
        the windows' totals while it fits (the read model's per-minute totals, when it
        keeps them), else on the two windows' exact totals; only a refusal reads the
        submissions themselves, to say when a retry will be admitted."""
        limits = self._limits_for(user_id)
        size = spec.payload_bytes
        counted = sum(1 for p in pending if p.counted)
        stored = sum(p.stored_bytes for p in pending)

        def fits(totals: SubmissionTotals, counted: int, stored: int) -> bool:
            return (
                totals.counted + counted < limits.rate_limit
                and totals.stored_bytes + stored + size <= limits.storage_quota_bytes
            )

        rate_since = now - timedelta(seconds=limits.rate_window_s)
        storage_since = now - timedelta(seconds=limits.storage_window_s)
        bound = await self._queries.submission_bound(user_id, rate_since, storage_since)
        exact = bound is None
        if bound is None:
            totals = await self._queries.submission_totals(user_id, rate_since, storage_since)
        else:
            totals = bound
        # Both figures at least what they stand for: what fits them fits the exact count.
        extra = unshown.bound() if unshown is not None else SubmissionTotals(0, 0)
        if fits(totals, counted + extra.counted, stored + extra.stored_bytes):
            return None
        if unshown is not None:
            pending = [*pending, *await unshown.exact()]
            counted = sum(1 for p in pending if p.counted)
            stored = sum(p.stored_bytes for p in pending)
        if not exact:
            totals = await self._queries.submission_totals(user_id, rate_since, storage_since)
        if fits(totals, counted, stored):
            return None
        since = now - timedelta(seconds=lookback_s(limits))
        recent = [*await self._queries.recent_submissions(user_id, since), *pending]
        return admit(limits, recent, size, now)

    def refuse(
        self,
        refusal: Refusal,
        user_id: str,
        spec: RunSpec,
        priority: int,
        digest: str,
        now: datetime,
    ) -> AdmissionRefused:
        """Record the refusal (digest and size only; a store call) and return the error."""
        submission_id = uuid4()
        cause = Cause(now, submission_id, None)
        refused = RefusedSubmission.record(
            submission_id, user_id, spec, priority, digest, refusal, cause
        )
        self._store.record(refused.collect_events())
        return AdmissionRefused(refusal, submission_id)
