"""What this process recorded that the read model may not show yet, for admission.

Admission counts a user's submissions from the read model, which shows a recorded one only
once the projections have folded it in; those recorded meanwhile count too. Telling exactly
which of them the read model shows takes a read of the user's recent submissions (matched by
their time), whose cost grows with the projections' lag times the submission rate. So the
common case uses a bound instead: every submission recorded in the last `UNPROJECTED_S`,
summed as they come and go (some are counted twice, which only ever refuses less eagerly
than never), and only a submission that does not fit the bound asks for the exact list."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta

from codeexec.domain.admission import RecentSubmission
from codeexec.ports.clock import Clock
from codeexec.ports.execution_queries import ExecutionQueries
from codeexec.ports.read_model import SubmissionTotals

UNPROJECTED_S = 60.0  # a recorded submission the read model never showed counts this long
EARLIER = timedelta(seconds=1)  # listings start after a time: include the first's own
SWEEP_AT = 10_000  # users kept before those with nothing left are let go


class UserUnshown:
    """One user's recorded submissions, oldest first, with their running totals."""

    def __init__(self, queries: ExecutionQueries, user_id: str) -> None:
        self._queries, self.user_id = queries, user_id
        self._recorded: deque[RecentSubmission] = deque()
        self._counted = self._bytes = 0

    def __len__(self) -> int:
        return len(self._recorded)

    def add(self, submission: RecentSubmission) -> None:
        self._recorded.append(submission)
        self._counted += submission.counted
        self._bytes += submission.stored_bytes

    def forget_before(self, cutoff: datetime) -> None:
        while self._recorded and self._recorded[0].created_at <= cutoff:
            gone = self._recorded.popleft()
            self._counted -= gone.counted
            self._bytes -= gone.stored_bytes

    def bound(self) -> SubmissionTotals:
        """At least what those the read model does not show add up to."""
        return SubmissionTotals(self._counted, self._bytes)

    async def exact(self) -> Sequence[RecentSubmission]:
        """Those the read model does not show (matched by their time, the one field both
        have); the ones it shows are forgotten. Others may add while the read model is
        asked: what is kept is taken from the list as it is once the answer is in."""
        if not self._recorded:
            return []
        since = self._recorded[0].created_at - EARLIER
        shown = await self._queries.recent_submissions(self.user_id, since)
        shown_at = {r.created_at for r in shown}
        kept = [r for r in self._recorded if r.created_at not in shown_at]
        self._recorded.clear()
        self._counted = self._bytes = 0
        for submission in kept:
            self.add(submission)
        return kept


class Unshown:
    """Every user's `UserUnshown` (the same object for a user while it has any, so one
    held across an await sees what others add)."""

    def __init__(self, queries: ExecutionQueries, clock: Clock) -> None:
        self._queries, self._clock = queries, clock
        self._users: dict[str, UserUnshown] = {}

    def add(self, user_id: str, submission: RecentSubmission) -> None:
        user = self._users.get(user_id)
        if user is None:
            if len(self._users) >= SWEEP_AT:
                self._sweep()
            user = self._users[user_id] = UserUnshown(self._queries, user_id)
        user.add(submission)

    def of(self, user_id: str) -> UserUnshown | None:
        """The user's, those older than `UNPROJECTED_S` forgotten; None when none are left."""
        user = self._users.get(user_id)
        if user is None:
            return None
        user.forget_before(self._cutoff())
        return user if user else None

    def _cutoff(self) -> datetime:
        return self._clock.now() - timedelta(seconds=UNPROJECTED_S)

    def _sweep(self) -> None:
        cutoff = self._cutoff()
        for user_id, user in list(self._users.items()):
            user.forget_before(cutoff)
            if not user:
                del self._users[user_id]
