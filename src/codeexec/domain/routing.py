"""Topics and the one table that routes each event type to the topics it is published on."""

from __future__ import annotations

from dataclasses import dataclass

EXECUTION_EVENTS = "execution_events"
EXECUTION_TASKS = "execution_tasks"
DEAD_LETTERS = "dead_letters"
REPLAY_SCRATCH = "replay_scratch"


@dataclass(frozen=True)
class TopicSpec:
    """A declared topic. Topics are declared up front, never auto-created."""

    name: str
    partitions: int
    retention_ms: int
    description: str = ""


DAY_MS = 24 * 3600 * 1000

TOPICS: dict[str, TopicSpec] = {
    spec.name: spec
    for spec in (
        TopicSpec(EXECUTION_EVENTS, 16, 90 * DAY_MS, "audit log: everything that happens"),
        TopicSpec(EXECUTION_TASKS, 4, 3 * DAY_MS, "work queue: scheduled runs, stop commands"),
        TopicSpec(DEAD_LETTERS, 1, 30 * DAY_MS, "events a consumer kept failing on"),
        TopicSpec(REPLAY_SCRATCH, 4, 1 * DAY_MS, "default target of replay sessions"),
    )
}

_AUDIT = (EXECUTION_EVENTS,)
_TASK = (EXECUTION_EVENTS, EXECUTION_TASKS)

ROUTES: dict[str, tuple[str, ...]] = {
    "ExecutionRequested": _AUDIT,
    "SubmissionRefused": _AUDIT,
    "ExecutionQueued": _AUDIT,
    "ExecutionRejected": _AUDIT,
    "ExecutionScheduled": _TASK,
    "ExecutionStarted": _AUDIT,
    "ExecutionOutput": _AUDIT,
    "ExecutionCancelRequested": _AUDIT,
    "ExecutionCompleted": _AUDIT,
    "ExecutionFailed": _AUDIT,
    "ExecutionTimedOut": _AUDIT,
    "ExecutionCancelled": _AUDIT,
    "SagaStarted": _AUDIT,
    "SandboxStopRequested": _TASK,
    "SlotReleased": _AUDIT,
    "SagaCompleted": _AUDIT,
    "ReplayRequested": _AUDIT,
    "ReplayProgressed": _AUDIT,
    "ReplayPaused": _AUDIT,
    "ReplayResumed": _AUDIT,
    "ReplayCompleted": _AUDIT,
    "ReplayCancelled": _AUDIT,
    "DeadLetterParked": _AUDIT,
    "DeadLetterRetryScheduled": _AUDIT,
    "DeadLetterRetried": _AUDIT,
    "DeadLetterRetryFailed": _AUDIT,
    "DeadLetterResolved": _AUDIT,
    "DeadLetterDiscarded": _AUDIT,
    "DeadLetterArchived": _AUDIT,
    # On the audit log, keyed by the limits' id: coordinators consume it; every process
    # following the log (LiveFeed) learns of it and reloads the limits from the store.
    "LimitsChanged": _AUDIT,
}
"""Every event is on the audit log; only scheduled work and stop commands are tasks."""


def topics_for(event_type: str) -> tuple[str, ...]:
    try:
        return ROUTES[event_type]
    except KeyError:
        raise LookupError(f"no route for event type {event_type!r}") from None
