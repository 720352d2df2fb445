"""Value objects shared by the domain and the ports: limits, source files, sandbox results."""

from __future__ import annotations

import base64
import hashlib
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    field_validator,
    model_validator,
)


def _bytes_from_wire(value: object) -> bytes:
    # On the wire bytes travel as base64 text; in Python they are bytes. Accept both.
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return base64.b64decode(value.encode("ascii"), validate=True)
    raise ValueError("expected bytes or base64 text")


Bytes = Annotated[
    bytes,
    PlainValidator(_bytes_from_wire),
    PlainSerializer(
        lambda b: base64.b64encode(b).decode("ascii"), return_type=str, when_used="json"
    ),
]
"""Bytes that round-trip exactly through JSON as base64 (output is never decoded lossily)."""


class Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SandboxStatus(StrEnum):
    """How a run in a sandbox ended: one status, never 'completed' for everything."""

    SUCCEEDED = "succeeded"
    RUNTIME_ERROR = "runtime_error"
    SIGNALED = "signaled"
    TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
    MEMORY_LIMIT_EXCEEDED = "memory_limit_exceeded"
    OUTPUT_LIMIT_EXCEEDED = "output_limit_exceeded"
    COMPILATION_ERROR = "compilation_error"
    CANCELLED = "cancelled"
    INTERNAL_ERROR = "internal_error"


class Limits(Value):
    """Resource limits for one stage of a run; enforced outside the sandboxed process."""

    wall_time_s: float = Field(default=10.0, gt=0, le=3600)
    cpu_time_s: float = Field(default=5.0, gt=0, le=3600)
    memory_bytes: int = Field(default=256 * 2**20, ge=2**20)
    processes: int = Field(default=64, ge=1, le=4096)
    output_bytes: int = Field(default=2**20, ge=0, description="per stream")
    file_size_bytes: int = Field(default=16 * 2**20, ge=0)
    open_files: int = Field(default=256, ge=8, le=65536)


DEFAULT_COMPILE_LIMITS = Limits(
    wall_time_s=30.0, cpu_time_s=30.0, memory_bytes=1024 * 2**20, processes=128
)


class SourceFile(Value):
    """A file of a submission; `name` is a relative path that stays inside the work dir."""

    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
    content: Bytes

    @field_validator("name")
    @classmethod
    def _stays_inside(cls, name: str) -> str:
        if any(part in (".", "..") for part in name.split("/")):
            raise ValueError("a file name must not contain '.' or '..' path segments")
        return name


class RunSpec(Value):
    """Everything a sandbox needs to run one submission; the task on `execution_tasks`."""

    language: str = Field(min_length=1, max_length=64)
    version: str | None = None
    files: tuple[SourceFile, ...] = Field(min_length=1)
    stdin: Bytes = b""
    args: tuple[str, ...] = ()
    limits: Limits = Limits()
    compile_limits: Limits = DEFAULT_COMPILE_LIMITS

    @model_validator(mode="after")
    def _distinct_names(self) -> RunSpec:
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError("files: each file name must be unique")
        return self

    @property
    def payload_bytes(self) -> int:
        """What the submission asks the store to keep: its files' and stdin's bytes."""
        return sum(len(f.content) for f in self.files) + len(self.stdin)


def request_digest(spec: RunSpec, priority: int) -> str:
    """The request's fingerprint: sha256 of the canonical spec and the priority. Fields left
    at their defaults are omitted, so a field added later (with a default) keeps old
    fingerprints valid; the same request always gives the same digest."""
    canonical = spec.model_dump_json(exclude_defaults=True).encode("utf-8")
    digest = hashlib.sha256(canonical)
    digest.update(b"\0priority=%d" % priority)
    return "sha256:" + digest.hexdigest()


class RunResult(Value):
    """The bytes-exact outcome of a sandbox run."""

    status: SandboxStatus
    exit_code: int | None = None
    signal: int | None = None
    stdout: Bytes = b""
    stderr: Bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    compile_output: Bytes | None = None
    cpu_time_s: float | None = None
    wall_time_s: float | None = None
    memory_bytes: int | None = None
    message: str = ""


Stream = Literal["stdout", "stderr"]
