"""The HTTP API's request and response models (what the OpenAPI document describes)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from codeexec.ports.read_model import ExecutionView

Encoding = Literal["utf-8", "base64"]
StatusFilter = Literal[
    "requested",
    "queued",
    "scheduled",
    "running",
    "completed",
    "failed",
    "timed_out",
    "succeeded",
    "runtime_error",
    "signaled",
    "time_limit_exceeded",
    "memory_limit_exceeded",
    "output_limit_exceeded",
    "compilation_error",
    "cancelled",
    "internal_error",
    "rejected",
]
"""A lifecycle state or a terminal status, as filters for listing."""


class FileIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
    content: str = Field(description="UTF-8 text, or base64 when `encoding` is base64")
    encoding: Encoding = "utf-8"


class LimitsIn(BaseModel):
    """Per-run resource limits; omitted fields take the defaults. Values above the
    admin-set maxima are rejected with a field error."""

    model_config = ConfigDict(extra="forbid", strict=True)
    wall_time_s: float | None = Field(default=None, gt=0, le=3600)
    cpu_time_s: float | None = Field(default=None, gt=0, le=3600)
    memory_bytes: int | None = Field(default=None, ge=2**20)
    processes: int | None = Field(default=None, ge=1, le=4096)
    output_bytes: int | None = Field(default=None, ge=0)
    file_size_bytes: int | None = Field(default=None, ge=0)
    open_files: int | None = Field(default=None, ge=8, le=65536)


def _one_of_source_or_files(schema: dict[str, Any]) -> None:
    # `source` and `files` are optional but never null, and exactly one is required.
    for name in ("source", "files"):
        prop = schema["properties"][name]
        kept = [s for s in prop.pop("anyOf", []) if s.get("type") != "null"]
        prop.pop("default", None)
        if kept:
            prop.update(kept[0])
    schema["oneOf"] = [{"required": ["source"]}, {"required": ["files"]}]


class SubmissionIn(BaseModel):
    """A submission: exactly one of `source` (one file) or `files`."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra=_one_of_source_or_files
    )
    language: str = Field(min_length=1, max_length=64)
    version: str | None = Field(default=None, max_length=64)
    source: str | None = Field(default=None, description="the program text (one file)")
    files: list[FileIn] | None = Field(default=None, min_length=1, max_length=64)
    stdin: str = Field(default="", description="UTF-8 text, or base64 with stdin_encoding")
    stdin_encoding: Encoding = "utf-8"
    args: list[str] = Field(default_factory=list, max_length=256)
    limits: LimitsIn | None = None
    priority: int | None = Field(default=None, ge=0, le=9, description="admins (or if allowed)")

    @model_validator(mode="after")
    def _one_source(self) -> SubmissionIn:
        given = {"source", "files"} & self.model_fields_set
        if len(given) != 1 or getattr(self, given.pop()) is None:
            raise ValueError("give exactly one of `source` or `files` (not null)")
        return self


class Links(BaseModel):
    self: str
    events: str
    cancel: str


def encode_output(data: bytes | None) -> tuple[str | None, Encoding]:
    """UTF-8 text when the bytes are valid UTF-8, else base64 (never lossy)."""
    if data is None:
        return None, "utf-8"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


class ExecutionOut(BaseModel):
    """An execution. `status` is the lifecycle state while in flight (requested, queued,
    scheduled, running), then one of the terminal statuses. Output fields are UTF-8 text
    unless their `*_encoding` says base64 (the bytes were not valid UTF-8)."""

    id: UUID
    user_id: str
    language: str
    version: str | None
    priority: int
    state: str
    status: str
    terminal: bool
    exit_code: int | None
    signal: int | None
    stdout: str
    stdout_encoding: Encoding
    stderr: str
    stderr_encoding: Encoding
    stdout_truncated: bool
    stderr_truncated: bool
    compile_output: str | None
    compile_output_encoding: Encoding
    cpu_time_s: float | None
    wall_time_s: float | None
    memory_bytes: int | None
    message: str
    cancel_requested: bool
    idempotency_key: str | None
    created_at: datetime
    queued_at: datetime | None
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    links: Links

    @classmethod
    def of(cls, view: ExecutionView, base: str = "/api/v1/executions") -> ExecutionOut:
        stdout, stdout_enc = encode_output(view.stdout)
        stderr, stderr_enc = encode_output(view.stderr)
        compile_output, compile_enc = encode_output(view.compile_output)
        url = f"{base}/{view.id}"
        return cls(
            id=view.id,
            user_id=view.user_id,
            language=view.language,
            version=view.version,
            priority=view.priority,
            state=view.state,
            status=view.status,
            terminal=view.terminal,
            exit_code=view.exit_code,
            signal=view.signal,
            stdout=stdout or "",
            stdout_encoding=stdout_enc,
            stderr=stderr or "",
            stderr_encoding=stderr_enc,
            stdout_truncated=view.stdout_truncated,
            stderr_truncated=view.stderr_truncated,
            compile_output=compile_output,
            compile_output_encoding=compile_enc,
            cpu_time_s=view.cpu_time_s,
            wall_time_s=view.wall_time_s,
            memory_bytes=view.memory_bytes,
            message=view.message,
            cancel_requested=view.cancel_requested,
            idempotency_key=view.idempotency_key,
            created_at=view.created_at,
            queued_at=view.queued_at,
            scheduled_at=view.scheduled_at,
            started_at=view.started_at,
            finished_at=view.finished_at,
            links=Links(self=url, events=f"{url}/events", cancel=f"{url}/cancel"),
        )


class ExecutionPage(BaseModel):
    items: list[ExecutionOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")


class LanguageOut(BaseModel):
    name: str
    version: str
    aliases: list[str]
    compiled: bool
    extension: str


class QueueStatusOut(BaseModel):
    queued: int
    running: int
    max_queue: int
    max_running: int
    queued_by_user: dict[str, int]
    running_by_user: dict[str, int]
    queued_by_priority: dict[str, int]
    backlog: dict[str, int] = Field(description="unconsumed messages per consumer group")


class DeadLetterCheck(BaseModel):
    open: int = Field(description="dead letters parked, retrying or exhausted")
    level: Literal["ok", "warning", "critical"] = Field(
        description="the open count against the warning and critical thresholds"
    )
    warning_at: int
    critical_at: int
    oldest_open_at: datetime | None


class HealthChecks(BaseModel):
    roles: dict[str, str] = Field(description="each role task: running, stopped or crashed: ...")
    dead_letters: DeadLetterCheck | None = Field(
        description="the dead-letter backlog (null before the runtime started)"
    )


class HealthOut(BaseModel):
    """`degraded` is still ready (200): the dead-letter backlog is critical, which needs
    an operator but not a restart. `unavailable` (503) means a role is not running."""

    status: Literal["ok", "degraded", "unavailable"]
    detail: str = ""
    checks: HealthChecks | None = None


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details (served as application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] | None = None
    limit: str | None = Field(
        default=None,
        description="the limit that refused the request, as named in the limits document "
        "or the server settings (e.g. max_waiters_per_user)",
    )
