"""The dead letter aggregate and its retry policy: exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID, uuid5

from codeexec.domain.aggregate import Aggregate, Cause, IllegalTransition
from codeexec.domain.envelope import DomainEvent
from codeexec.domain.operations_events import (
    DeadLetterArchived,
    DeadLetterDiscarded,
    DeadLetterParked,
    DeadLetterResolved,
    DeadLetterRetried,
    DeadLetterRetryFailed,
    DeadLetterRetryScheduled,
)

DEAD_LETTER_NAMESPACE = UUID("2d5f0a34-8c1e-4f6b-b7a2-9e3c4d5a6f70")


def dead_letter_id(group: str, topic: str, partition: int, offset: int) -> UUID:
    """One dead letter per failed delivery to one group, however often it is parked."""
    return uuid5(DEAD_LETTER_NAMESPACE, f"{group}/{topic}/{partition}/{offset}")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0
    jitter: float = 0.2  # up to this fraction of the delay, added at random

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        """Delay before retry `attempt` (1-based): base * 2^(attempt-1), capped, plus jitter."""
        seconds = min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s)
        return timedelta(seconds=seconds * (1 + self.jitter * rng.random()))


@dataclass(frozen=True)
class DeadLetterConfig:
    default: RetryPolicy = field(default_factory=RetryPolicy)
    by_category: dict[str, RetryPolicy] = field(default_factory=dict)
    warning_backlog: int = 10
    critical_backlog: int = 100

    def policy_for(self, category: str) -> RetryPolicy:
        return self.by_category.get(category, self.default)


class DeadLetterState(StrEnum):
    PARKED = "parked"  # waiting for an automatic retry
    RETRYING = "retrying"  # republished, outcome not known yet
    EXHAUSTED = "exhausted"  # automatic retries used up: an admin decides
    RESOLVED = "resolved"
    DISCARDED = "discarded"
    ARCHIVED = "archived"


OPEN_STATES = frozenset(
    {DeadLetterState.PARKED, DeadLetterState.RETRYING, DeadLetterState.EXHAUSTED}
)


class DeadLetter(Aggregate):
    created_by = (DeadLetterParked,)

    def __init__(self, id: UUID, execution_id: UUID, user_id: str) -> None:
        super().__init__(id, execution_id, user_id)
        self.state = DeadLetterState.PARKED
        self.parked: DeadLetterParked | None = None
        self.attempt = 0  # retries published so far
        self.due_at: datetime | None = None
        self.last_error = ""
        self.updated_at: datetime | None = None

    @classmethod
    def park(
        cls, dead_letter_id: UUID, execution_id: UUID, user_id: str, cause: Cause, **fields: object
    ) -> DeadLetter:
        letter = cls(dead_letter_id, execution_id, user_id)
        letter._trigger(DeadLetterParked, cause, **fields)
        return letter

    def correlation_id(self) -> UUID:
        return self.parked.correlation_id if self.parked is not None else self.id

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def schedule_retry(self, cause: Cause, policy: RetryPolicy, rng: random.Random) -> bool:
        """Plan the next automatic retry; False when the policy's retries are used up."""
        if self.attempt >= policy.max_retries:
            return False
        attempt = self.attempt + 1
        self._trigger(
            DeadLetterRetryScheduled,
            cause,
            attempt=attempt,
            due_at=cause.time + policy.delay(attempt, rng),
        )
        return True

    def retry(self, cause: Cause, by: str) -> int:
        if self.state not in (DeadLetterState.PARKED, DeadLetterState.EXHAUSTED):
            raise IllegalTransition(f"dead letter {self.id} is {self.state}; cannot retry")
        self._trigger(DeadLetterRetried, cause, attempt=self.attempt + 1, by=by)
        return self.attempt

    def retry_failed(self, cause: Cause, error: str, exhausted: bool) -> None:
        self._trigger(
            DeadLetterRetryFailed, cause, attempt=self.attempt, error=error, exhausted=exhausted
        )

    def resolve(self, cause: Cause) -> None:
        if self.state is not DeadLetterState.RESOLVED:
            self._trigger(DeadLetterResolved, cause, attempt=self.attempt)

    def discard(self, cause: Cause, by: str, reason: str) -> None:
        self._require_open("discard")
        self._trigger(DeadLetterDiscarded, cause, by=by, reason=reason)

    def archive(self, cause: Cause, by: str) -> None:
        self._require_open("archive")
        self._trigger(DeadLetterArchived, cause, by=by)

    def _require_open(self, action: str) -> None:
        if not self.is_open:
            raise IllegalTransition(f"cannot {action} dead letter {self.id}: it is {self.state}")

    def apply(self, event: DomainEvent) -> None:
        self.updated_at = event.time
        if isinstance(event, DeadLetterParked):
            self.parked, self.last_error = event, event.error
            return
        if not self.is_open and not isinstance(event, DeadLetterResolved):
            raise IllegalTransition(f"dead letter {self.id} is {self.state}")
        if isinstance(event, DeadLetterRetryScheduled):
            self.state, self.due_at = DeadLetterState.PARKED, event.due_at
        elif isinstance(event, DeadLetterRetried):
            self.state, self.attempt, self.due_at = DeadLetterState.RETRYING, event.attempt, None
        elif isinstance(event, DeadLetterRetryFailed):
            self.last_error = event.error
            self.state = DeadLetterState.EXHAUSTED if event.exhausted else DeadLetterState.PARKED
        elif isinstance(event, DeadLetterResolved):
            self.state = DeadLetterState.RESOLVED
        elif isinstance(event, DeadLetterDiscarded):
            self.state = DeadLetterState.DISCARDED
        elif isinstance(event, DeadLetterArchived):
            self.state = DeadLetterState.ARCHIVED
        else:
            raise IllegalTransition(f"{event.type_name} is not a dead letter event")
