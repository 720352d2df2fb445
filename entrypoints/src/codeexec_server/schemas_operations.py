"""Request and response models of the operators' API: replay sessions and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    Strict,
    field_validator,
)

from codeexec.domain.dead_letter import DeadLetter
from codeexec.domain.operations_events import ReplayFilter
from codeexec.domain.replay import ReplaySession, ReplayState
from codeexec.domain.routing import DEAD_LETTERS as DEAD_LETTER_TOPIC
from codeexec.domain.routing import REPLAY_SCRATCH, ROUTES, TOPICS
from codeexec_server.schemas import Encoding, encode_output

EVENT_TYPES: list[JsonValue] = [name for name in sorted(ROUTES)]
REPLAY_TOPICS: list[JsonValue] = [name for name in sorted(TOPICS) if name != DEAD_LETTER_TOPIC]
"""Any declared topic but the DLQ's: it only takes parked messages (with their dl-* headers)."""
ReplayStateName = Literal["running", "paused", "completed", "cancelled"]
DeadLetterStateName = Literal[
    "parked", "retrying", "exhausted", "resolved", "discarded", "archived"
]
DeadLetterStateFilter = Literal[
    "open", "parked", "retrying", "exhausted", "resolved", "discarded", "archived"
]
"""A dead letter's state, or `open` for parked, retrying and exhausted together."""
REPLAYS = "/api/v1/admin/replays"
DEAD_LETTERS = "/api/v1/admin/dead-letters"


def _text(value: object) -> object:
    # JSON carries times and ids as strings; strict models would refuse them as strings,
    # lax ones would also take numbers, which the document does not allow.
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


Time = Annotated[AwareDatetime, Strict(False), BeforeValidator(_text)]
Id = Annotated[UUID, Strict(False), BeforeValidator(_text)]


class ReplayFilterIn(BaseModel):
    """Which stored events to re-emit; every given criterion must match (empty = all)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    since: Time | None = Field(default=None, description="events at or after (with zone)")
    until: Time | None = Field(default=None, description="events before (with zone)")
    event_types: list[str] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"items": {"type": "string", "enum": EVENT_TYPES}},
    )
    execution_ids: list[Id] = Field(default_factory=list, max_length=1000)
    user_id: str | None = Field(default=None, min_length=1, max_length=128)
    until_position: int | None = Field(
        default=None,
        ge=1,
        le=2**53,
        description="last store position to examine; default: the end of the store now "
        "(pass a dry run's value to replay exactly what it counted)",
    )

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - set(ROUTES))
        if unknown:
            raise ValueError(f"unknown event types: {', '.join(unknown)}")
        return names

    def domain(self) -> ReplayFilter:
        return ReplayFilter(
            since=self.since,
            until=self.until,
            event_types=tuple(self.event_types),
            execution_ids=tuple(self.execution_ids),
            user_id=self.user_id,
            until_position=self.until_position or 0,
        )


class ReplayIn(BaseModel):
    """A replay session to start at once."""

    model_config = ConfigDict(extra="forbid", strict=True)
    filters: ReplayFilterIn = Field(default_factory=ReplayFilterIn)
    target_topic: str = Field(
        default=REPLAY_SCRATCH,
        description="a declared topic, except the dead-letter topic",
        json_schema_extra={"enum": REPLAY_TOPICS},
    )
    batch_size: int = Field(default=500, ge=1, le=10_000)
    rate_per_s: float | None = Field(
        default=None, ge=1, le=1_000_000, description="events per second; default: unpaced"
    )
    dry_run: bool = Field(default=False, description="count what would be sent, send nothing")


class ReplayFilterOut(BaseModel):
    since: datetime | None
    until: datetime | None
    event_types: list[str]
    execution_ids: list[UUID]
    user_id: str | None
    until_position: int


class ReplayLinks(BaseModel):
    self: str
    pause: str
    resume: str
    cancel: str


class ReplayOut(BaseModel):
    """A replay session: its request, state and progress. `total` is the number of store
    positions to examine; `position` how far it got; of those, `matched` were selected,
    `sent` published (0 in a dry run), `failed` could not be published, `skipped` were
    not selected."""

    id: UUID
    state: ReplayStateName
    created_by: str
    filters: ReplayFilterOut
    target_topic: str
    batch_size: int
    rate_per_s: float | None
    dry_run: bool
    total: int
    position: int
    matched: int
    sent: int
    skipped: int
    failed: int
    percent: float = Field(ge=0, le=100)
    finished: bool
    links: ReplayLinks

    @classmethod
    def of(cls, session: ReplaySession) -> ReplayOut:
        f = session.filters
        total = session.total
        if session.state is ReplayState.COMPLETED or total == 0:
            percent = 100.0 if session.state is ReplayState.COMPLETED else 0.0
        else:
            percent = round(min(100.0, 100.0 * session.position / total), 1)
        url = f"{REPLAYS}/{session.id}"
        return cls(
            id=session.id,
            state=session.state.value,
            created_by=session.user_id,
            filters=ReplayFilterOut(
                since=f.since,
                until=f.until,
                event_types=list(f.event_types),
                execution_ids=list(f.execution_ids),
                user_id=f.user_id,
                until_position=f.until_position,
            ),
            target_topic=session.target_topic,
            batch_size=session.batch_size,
            rate_per_s=session.rate_per_s,
            dry_run=session.dry_run,
            total=total,
            position=session.position,
            matched=session.matched,
            sent=session.sent,
            skipped=session.skipped,
            failed=session.failed,
            percent=percent,
            finished=session.finished,
            links=ReplayLinks(
                self=url, pause=f"{url}/pause", resume=f"{url}/resume", cancel=f"{url}/cancel"
            ),
        )


class DeadLetterLinks(BaseModel):
    self: str
    retry: str
    discard: str
    archive: str


class DeadLetterSummary(BaseModel):
    """A dead letter: a message a consumer group kept failing on. `retries` counts the
    retries published so far (automatic and by admins); `due_at` is the next automatic one."""

    id: UUID
    state: DeadLetterStateName
    open: bool
    group: str
    original_topic: str
    event_type: str
    execution_id: UUID
    user_id: str
    error: str = Field(description="the latest error")
    attempts: int = Field(description="deliveries that failed before it was parked")
    retries: int
    due_at: datetime | None
    parked_at: datetime
    updated_at: datetime | None
    links: DeadLetterLinks

    @classmethod
    def fields_of(cls, letter: DeadLetter) -> dict[str, object]:
        parked = letter.parked
        assert parked is not None  # the manager only hands out parked letters
        url = f"{DEAD_LETTERS}/{letter.id}"
        return {
            "id": letter.id,
            "state": letter.state.value,
            "open": letter.is_open,
            "group": parked.group,
            "original_topic": parked.original_topic,
            "event_type": parked.event_type,
            "execution_id": letter.execution_id,
            "user_id": letter.user_id,
            "error": letter.last_error,
            "attempts": parked.attempts,
            "retries": letter.attempt,
            "due_at": letter.due_at,
            "parked_at": parked.time,
            "updated_at": letter.updated_at,
            "links": DeadLetterLinks(
                self=url, retry=f"{url}/retry", discard=f"{url}/discard", archive=f"{url}/archive"
            ),
        }

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterSummary:
        return cls.model_validate(cls.fields_of(letter))


class DeadLetterOut(DeadLetterSummary):
    """Full inspection: the message as it was parked. `payload` is UTF-8 text unless
    `payload_encoding` says base64 (the bytes were not valid UTF-8)."""

    category: str
    first_error: str = Field(description="the error it was parked with")
    partition: int
    offset: int
    key: str
    payload: str
    payload_encoding: Encoding
    headers: dict[str, str]

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterOut:
        parked = letter.parked
        assert parked is not None
        payload, encoding = encode_output(parked.payload)
        return cls.model_validate(
            {
                **cls.fields_of(letter),
                "category": parked.category,
                "first_error": parked.error,
                "partition": parked.partition,
                "offset": parked.offset,
                "key": parked.key,
                "payload": payload or "",
                "payload_encoding": encoding,
                "headers": dict(parked.headers),
            }
        )


class DeadLetterPage(BaseModel):
    items: list[DeadLetterSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")


class DiscardIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: str = Field(default="", max_length=2000)


def links_to(parameter: str, pointer: str, *operation_ids: str) -> dict[str, Any]:
    """An OpenAPI response's `links`: these operations take `parameter` from the body."""
    return {
        "links": {
            op: {"operationId": op, "parameters": {parameter: f"$response.body#{pointer}"}}
            for op in operation_ids
        }
    }
