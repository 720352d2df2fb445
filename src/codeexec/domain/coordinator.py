"""Coordinator policy: rate limits, concurrency caps and a bounded priority queue, without I/O.

Time is passed in (`now`, seconds); the service turns decisions into events and, after a
restart, folds the stored facts back in through the idempotent `restore_*` methods."""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from uuid import UUID

from codeexec.domain.coordinator_queue import MAX_PRIORITY, MIN_PRIORITY, ExecutionQueue
from codeexec.domain.events import RejectionReason

# Ids that left the coordinator (released, cancelled) are remembered so a redelivered
# queued/scheduled fact cannot revive them; bounded, the oldest are forgotten first.
FINISHED_IDS_REMEMBERED = 100_000


@dataclass(frozen=True)
class UserLimits:
    rate_limit: int = 60  # accepted submissions per rate window
    rate_window_s: float = 60.0
    max_running: int = 4
    max_queued: int = 100
    # Bytes of source, stdin and output the user's submissions of the last storage window
    # may keep in the store (checked on admission, see codeexec.domain.admission).
    storage_quota_bytes: int = 2**30
    storage_window_s: float = 86_400.0

    def __post_init__(self) -> None:
        if min(self.rate_limit, self.max_running, self.max_queued, self.storage_quota_bytes) < 0:
            raise ValueError(f"user limits must not be negative: {self}")
        if not self.rate_window_s > 0:
            raise ValueError(f"rate window must be positive, got {self.rate_window_s}")
        if not self.storage_window_s > 0:
            raise ValueError(f"storage window must be positive, got {self.storage_window_s}")


@dataclass(frozen=True)
class CoordinatorConfig:
    max_running: int = 8
    max_queue: int = 1000
    aging_interval_s: float = 10.0  # each interval waited raises effective priority by 1
    default_user_limits: UserLimits = field(default_factory=UserLimits)
    user_limits: Mapping[str, UserLimits] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if min(self.max_running, self.max_queue) < 0:
            raise ValueError(f"global caps must not be negative: {self}")
        if not self.aging_interval_s > 0:
            raise ValueError(f"aging interval must be positive, got {self.aging_interval_s}")

    def limits_for(self, user_id: str) -> UserLimits:
        return self.user_limits.get(user_id, self.default_user_limits)


@dataclass(frozen=True)
class Rejected:
    execution_id: UUID
    reason: RejectionReason
    message: str


@dataclass(frozen=True)
class Queued:
    execution_id: UUID
    queue_depth: int


@dataclass(frozen=True)
class Scheduled:
    execution_id: UUID
    user_id: str


@dataclass(frozen=True)
class Dequeued:
    execution_id: UUID


Decision = Rejected | Queued | Scheduled | Dequeued


@dataclass(frozen=True)
class QueueStatus:
    queued: int
    running: int
    max_queue: int
    max_running: int
    queued_by_user: Mapping[str, int]  # users with nothing queued are left out
    running_by_user: Mapping[str, int]
    queued_by_priority: Mapping[int, int]  # by submitted priority, not aged


class _RecentAcceptances:
    """Accepted submissions per user inside the sliding rate window; older ones are dropped."""

    def __init__(self) -> None:
        self._by_user: dict[str, list[tuple[float, UUID | None]]] = {}
        self._seen: dict[str, set[tuple[float, UUID | None]]] = {}

    def count(self, user_id: str, now: float, window_s: float) -> int:
        self._prune(user_id, now - window_s)
        return len(self._by_user.get(user_id, ()))

    def record(self, user_id: str, at: float, execution_id: UUID | None, window_s: float) -> None:
        fact = (at, execution_id)
        seen = self._seen.setdefault(user_id, set())
        if fact in seen:
            return
        seen.add(fact)
        accepted = self._by_user.setdefault(user_id, [])
        insort(accepted, fact, key=itemgetter(0))
        # Future decisions happen no earlier than the latest fact: older ones cannot matter.
        self._prune(user_id, accepted[-1][0] - window_s)

    def _prune(self, user_id: str, cutoff: float) -> None:
        accepted = self._by_user.get(user_id)
        if not accepted or accepted[0][0] > cutoff:
            return
        expired = bisect_right(accepted, cutoff, key=itemgetter(0))
        self._seen[user_id].difference_update(accepted[:expired])
        del accepted[:expired]
        if not accepted:
            del self._by_user[user_id], self._seen[user_id]


class _FinishedIds:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._order: deque[UUID] = deque()
        self._ids: set[UUID] = set()

    def __contains__(self, execution_id: object) -> bool:
        return execution_id in self._ids

    def add(self, execution_id: UUID) -> None:
        if execution_id in self._ids:
            return
        self._ids.add(execution_id)
        self._order.append(execution_id)
        if len(self._order) > self._capacity:
            self._ids.discard(self._order.popleft())


class Coordinator:
    """Decides, for each submission, reject or queue; and which queued executions run next."""

    def __init__(self, config: CoordinatorConfig) -> None:
        self._config = config
        self._queue = ExecutionQueue(config.aging_interval_s, self._can_run_more)
        self._running: dict[UUID, str] = {}
        self._running_by_user: dict[str, int] = {}
        self._accepted = _RecentAcceptances()
        self._finished = _FinishedIds(FINISHED_IDS_REMEMBERED)

    @property
    def config(self) -> CoordinatorConfig:
        return self._config

    @config.setter
    def config(self, config: CoordinatorConfig) -> None:
        self.set_config(config)

    def set_config(self, config: CoordinatorConfig) -> None:
        """New limits apply to future decisions; nothing running is stopped."""
        self._config = config
        self._queue.aging_interval_s = config.aging_interval_s
        self._queue.refresh()

    # --- commands -----------------------------------------------------------------------

    def submit(
        self, execution_id: UUID, user_id: str, priority: int, now: float
    ) -> Rejected | Queued:
        if execution_id in self._queue or execution_id in self._running:
            return Queued(execution_id, len(self._queue))  # redelivered: already counted
        if execution_id in self._finished:
            return Rejected(
                execution_id,
                RejectionReason.INVALID,
                f"execution {execution_id} already left the coordinator; it never runs twice",
            )
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            message = f"priority must be {MIN_PRIORITY}..{MAX_PRIORITY}, got {priority}"
            return Rejected(execution_id, RejectionReason.INVALID, message)
        limits = self._config.limits_for(user_id)
        if self._accepted.count(user_id, now, limits.rate_window_s) >= limits.rate_limit:
            message = f"rate limit of {limits.rate_limit} per {limits.rate_window_s:g}s exceeded"
            return Rejected(execution_id, RejectionReason.RATE_LIMITED, message)
        if self._queue.count_for(user_id) >= limits.max_queued:
            message = f"per-user queue limit of {limits.max_queued} reached"
            return Rejected(execution_id, RejectionReason.QUEUE_FULL, message)
        if len(self._queue) >= self._config.max_queue:
            message = f"queue capacity of {self._config.max_queue} reached"
            return Rejected(execution_id, RejectionReason.QUEUE_FULL, message)
        self._accepted.record(user_id, now, execution_id, limits.rate_window_s)
        self._queue.push(execution_id, user_id, priority, now)
        return Queued(execution_id, len(self._queue))

    def schedule(self, now: float) -> list[Scheduled]:
        """Start as many queued executions as the caps allow, best first."""
        scheduled: list[Scheduled] = []
        while len(self._running) < self._config.max_running:
            entry = self._queue.pop_best(now)
            if entry is None:
                break
            self._start(entry.execution_id, entry.user_id)
            scheduled.append(Scheduled(entry.execution_id, entry.user_id))
        return scheduled

    def cancel(self, execution_id: UUID) -> Dequeued | None:
        """Drop a queued execution; a running one is the saga's to stop, so None."""
        was_queued = execution_id in self._queue
        self.restore_removed(execution_id)
        return Dequeued(execution_id) if was_queued else None

    def release(self, execution_id: UUID) -> None:
        """The execution finished (idempotent): its slot is free, or it leaves the queue if it
        ended before running. Call `schedule` afterwards."""
        self.restore_released(execution_id)

    # --- queries ------------------------------------------------------------------------

    def is_queued(self, execution_id: UUID) -> bool:
        return execution_id in self._queue

    def is_running(self, execution_id: UUID) -> bool:
        return execution_id in self._running

    def status(self) -> QueueStatus:
        return QueueStatus(
            queued=len(self._queue),
            running=len(self._running),
            max_queue=self._config.max_queue,
            max_running=self._config.max_running,
            queued_by_user=self._queue.counts_by_user(),
            running_by_user=dict(self._running_by_user),
            queued_by_priority=self._queue.counts_by_priority(),
        )

    # --- folding stored facts (idempotent, applied in stored order) ---------------------

    def restore_accepted(self, user_id: str, at: float, execution_id: UUID | None = None) -> None:
        """Without an id, two facts for one user at the very same instant count once."""
        window_s = self._config.limits_for(user_id).rate_window_s
        self._accepted.record(user_id, at, execution_id, window_s)

    def restore_queued(
        self, execution_id: UUID, user_id: str, priority: int, enqueued_at: float
    ) -> None:
        known = execution_id in self._queue or execution_id in self._running
        if not known and execution_id not in self._finished:
            self._queue.push(execution_id, user_id, priority, enqueued_at)

    def restore_scheduled(self, execution_id: UUID, user_id: str) -> None:
        if execution_id in self._running or execution_id in self._finished:
            return
        self._queue.remove(execution_id)
        self._start(execution_id, user_id)

    def restore_released(self, execution_id: UUID) -> None:
        """Finished: its slot is free. Ending while still queued drops it, so a release fact
        means the same wherever redelivery puts it."""
        user_id = self._running.pop(execution_id, None)
        if user_id is None:
            self._queue.remove(execution_id)
        else:
            remaining = self._running_by_user[user_id] - 1
            if remaining:
                self._running_by_user[user_id] = remaining
            else:
                del self._running_by_user[user_id]
            self._queue.offer_user(user_id)
        self._finished.add(execution_id)

    def restore_removed(self, execution_id: UUID) -> None:
        self._queue.remove(execution_id)
        if execution_id not in self._running:
            self._finished.add(execution_id)

    # --- internals ----------------------------------------------------------------------

    def _start(self, execution_id: UUID, user_id: str) -> None:
        self._running[execution_id] = user_id
        self._running_by_user[user_id] = self._running_by_user.get(user_id, 0) + 1

    def _can_run_more(self, user_id: str) -> bool:
        running = self._running_by_user.get(user_id, 0)
        return running < self._config.limits_for(user_id).max_running
