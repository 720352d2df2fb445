"""The event contract: strict, versioned pydantic models for everything that happens."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, TypeAdapter, ValidationError

from codeexec.domain.envelope import DomainEvent, current_version, derive_event_id
from codeexec.domain.model import RECORDED, Bytes, RunResult, RunSpec, Stream, request_digest
from codeexec.domain.operations_events import (
    DeadLetterArchived,
    DeadLetterDiscarded,
    DeadLetterParked,
    DeadLetterResolved,
    DeadLetterRetried,
    DeadLetterRetryFailed,
    DeadLetterRetryScheduled,
    LimitsChanged,
    ReplayCancelled,
    ReplayCompleted,
    ReplayPaused,
    ReplayProgressed,
    ReplayRequested,
    ReplayResumed,
)

__all__ = ["DomainEvent", "current_version", "derive_event_id"]


class RejectionReason(StrEnum):
    RATE_LIMITED = "rate_limited"
    QUEUE_FULL = "queue_full"
    INVALID = "invalid"
    STORAGE_QUOTA = "storage_quota"


# --- Execution aggregate ---------------------------------------------------------------


class ExecutionRequested(DomainEvent):
    """The one stored copy of a submission's payload. v4: the spec may carry annotations
    (so a client's extras are recorded atomically with the request); v3 adds the request's
    digest (so a reused idempotency key is told apart from a repeat); v2 carries a full
    RunSpec; v1 (single `source` text and `language`) and v2 are upcast."""

    schema_version: int = 4
    type: Literal["ExecutionRequested"] = "ExecutionRequested"
    spec: RunSpec
    priority: int = Field(default=0, ge=0, le=9)
    idempotency_key: str | None = None
    request_digest: str


class SubmissionRefused(DomainEvent):
    """Admission refused a submission before anything else was recorded (rate limit or
    storage quota): an audit record of its digest and size, never its payload. It starts
    no execution; its ids are the refused submission's own."""

    type: Literal["SubmissionRefused"] = "SubmissionRefused"
    reason: RejectionReason
    limit: str
    message: str
    request_digest: str
    payload_bytes: int = Field(ge=0)
    language: str
    priority: int


class ExecutionQueued(DomainEvent):
    """Accepted: acknowledged and waiting for a slot."""

    type: Literal["ExecutionQueued"] = "ExecutionQueued"
    priority: int
    queue_depth: int


class ExecutionRejected(DomainEvent):
    type: Literal["ExecutionRejected"] = "ExecutionRejected"
    reason: RejectionReason
    message: str


class ExecutionScheduled(DomainEvent):
    """Scheduled work: the task names the execution; the worker loads its spec from the
    store, so the payload is stored once (v1 carried a copy of the spec, dropped on load)."""

    schema_version: int = 2
    type: Literal["ExecutionScheduled"] = "ExecutionScheduled"
    sandbox_id: str


class ExecutionStarted(DomainEvent):
    type: Literal["ExecutionStarted"] = "ExecutionStarted"
    sandbox_id: str
    worker_id: str


class ExecutionOutput(DomainEvent):
    type: Literal["ExecutionOutput"] = "ExecutionOutput"
    stream: Stream
    stage: Literal["compile", "run"] = "run"
    data: Bytes


class ExecutionCancelRequested(DomainEvent):
    type: Literal["ExecutionCancelRequested"] = "ExecutionCancelRequested"
    requested_by: str


class ExecutionCompleted(DomainEvent):
    """The sandbox ran to an end; `result.status` says how."""

    type: Literal["ExecutionCompleted"] = "ExecutionCompleted"
    result: RunResult


class ExecutionFailed(DomainEvent):
    """The platform could not run it (internal error, lost sandbox, unknown language)."""

    type: Literal["ExecutionFailed"] = "ExecutionFailed"
    reason: str
    result: RunResult | None = None


class ExecutionTimedOut(DomainEvent):
    """No result before the saga's deadline."""

    type: Literal["ExecutionTimedOut"] = "ExecutionTimedOut"
    deadline: datetime
    result: RunResult | None = None  # the output recorded before the deadline, if any


class ExecutionCancelled(DomainEvent):
    type: Literal["ExecutionCancelled"] = "ExecutionCancelled"
    stage: Literal["requested", "queued", "scheduled", "running"]
    result: RunResult | None = None


# --- Execution saga (process manager) --------------------------------------------------


class SagaStarted(DomainEvent):
    type: Literal["SagaStarted"] = "SagaStarted"
    sandbox_id: str
    deadline: datetime


class SandboxStopRequested(DomainEvent):
    """Command to the worker: kill this sandbox's process tree."""

    type: Literal["SandboxStopRequested"] = "SandboxStopRequested"
    sandbox_id: str
    reason: Literal["cancel", "timeout"]


class SlotReleased(DomainEvent):
    """Compensation: the concurrency slot held since scheduling is free again."""

    type: Literal["SlotReleased"] = "SlotReleased"


class SagaCompleted(DomainEvent):
    type: Literal["SagaCompleted"] = "SagaCompleted"
    outcome: str


AnyEvent: TypeAlias = Annotated[
    ExecutionRequested
    | SubmissionRefused
    | ExecutionQueued
    | ExecutionRejected
    | ExecutionScheduled
    | ExecutionStarted
    | ExecutionOutput
    | ExecutionCancelRequested
    | ExecutionCompleted
    | ExecutionFailed
    | ExecutionTimedOut
    | ExecutionCancelled
    | SagaStarted
    | SandboxStopRequested
    | SlotReleased
    | SagaCompleted
    | ReplayRequested
    | ReplayProgressed
    | ReplayPaused
    | ReplayResumed
    | ReplayCompleted
    | ReplayCancelled
    | DeadLetterParked
    | DeadLetterRetryScheduled
    | DeadLetterRetried
    | DeadLetterRetryFailed
    | DeadLetterResolved
    | DeadLetterDiscarded
    | DeadLetterArchived
    | LimitsChanged,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)

EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.model_fields["type"].default: cls for cls in DomainEvent.__subclasses__()
}

TERMINAL_EVENT_TYPES: tuple[type[DomainEvent], ...] = (
    ExecutionRejected,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionTimedOut,
    ExecutionCancelled,
)
TERMINAL_TYPE_NAMES = frozenset(cls.model_fields["type"].default for cls in TERMINAL_EVENT_TYPES)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""(type, from_version) -> function turning a v(from) payload into v(from+1)."""


def upcaster(type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def register(fn: Upcaster) -> Upcaster:
        UPCASTERS[(type_name, from_version)] = fn
        return fn

    return register


def to_document(event: DomainEvent) -> dict[str, Any]:
    """The JSON-ready form of an event, carrying its type and schema version."""
    return event.model_dump(mode="json")


def to_json(event: DomainEvent) -> bytes:
    """The wire and storage form (pydantic's serializer, the fast path)."""
    return event.model_dump_json().encode("utf-8")


def from_json(data: bytes | str) -> DomainEvent:
    """Validate received or stored JSON: current versions straight from the bytes, older
    ones through their upcasters."""
    try:
        event: DomainEvent = EVENT_ADAPTER.validate_json(data, context=RECORDED)
    except ValidationError:
        return from_document(json.loads(data))
    return event


def from_document(doc: dict[str, Any]) -> DomainEvent:
    """Validate a stored or received event, upcasting older schema versions first."""
    doc = dict(doc)
    type_name = doc.get("type")
    if not isinstance(type_name, str) or type_name not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_name!r}")
    target = current_version(EVENT_TYPES[type_name])
    version = int(doc.pop("schema_version", 1))
    if version > target:
        raise ValueError(f"{type_name} schema version {version} is newer than {target}")
    while version < target:
        doc = UPCASTERS[(type_name, version)](doc)
        version += 1
    doc["schema_version"] = version
    event: DomainEvent = EVENT_ADAPTER.validate_python(doc, context=RECORDED)
    return event


@upcaster("ExecutionRequested", 1)
def _requested_v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    # v1 stored one text source per request; v2 stores files as base64 bytes.
    import base64

    source = str(doc.pop("source"))
    language = str(doc.pop("language"))
    name = str(doc.pop("filename", "main"))
    content = base64.b64encode(source.encode("utf-8")).decode("ascii")
    doc["spec"] = {"language": language, "files": [{"name": name, "content": content}]}
    return doc


@upcaster("ExecutionRequested", 2)
def _requested_v2_to_v3(doc: dict[str, Any]) -> dict[str, Any]:
    # The digest is a function of what v2 stored, so old requests get the very digest a
    # repeat of them computes today.
    spec = RunSpec.model_validate(doc["spec"])
    doc["request_digest"] = request_digest(spec, int(doc.get("priority", 0)))
    return doc


@upcaster("ExecutionRequested", 3)
def _requested_v3_to_v4(doc: dict[str, Any]) -> dict[str, Any]:
    # v3 specs had no annotations: the field's default (none) is exactly what they meant.
    # The bump makes a v3-only reader refuse v4 events plainly instead of misreading them.
    return doc


@upcaster("ExecutionScheduled", 1)
def _scheduled_v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    # v1 copied the request's spec into the task; the request holds it already.
    doc.pop("spec", None)
    return doc
