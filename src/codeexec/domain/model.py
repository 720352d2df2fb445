"""Value objects shared by the domain and the ports: limits, source files, sandbox results."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from codeexec.domain.annotations import Annotations, size_of


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


RECORDED: dict[str, Any] = {"recorded": True}
"""Validation context for events read back from the store or the bus. They are facts: a rule
added later for new submissions must not make recorded history unreadable."""

MAX_ARG_BYTES = 131072
"""The kernel's bound on one argv string (MAX_ARG_STRLEN), terminating NUL included."""
MAX_ARGV_BYTES = 2**20
"""Bound on args plus file names (compilers get the names on their command line): half the
usual ARG_MAX, leaving room for the environment and the sandbox's own argv."""


def _recorded(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get("recorded"))


def _exec_safe(arg: str, info: ValidationInfo) -> str:
    if _recorded(info):
        return arg
    if "\0" in arg:
        raise ValueError("an argument must not contain NUL (\\0)")
    try:
        size = len(arg.encode("utf-8")) + 1
    except UnicodeEncodeError:
        raise ValueError("an argument must be valid Unicode text (no lone surrogates)") from None
    if size > MAX_ARG_BYTES:
        raise ValueError(f"an argument must be at most {MAX_ARG_BYTES - 1} bytes in UTF-8")
    return arg


Arg = Annotated[str, AfterValidator(_exec_safe)]
"""A command-line argument as execve takes it: no NUL, within the kernel's size bound."""


def _field_error(loc: tuple[str | int, ...], message: str, value: object) -> ValidationError:
    # A model rule that names the offending item (`files.1.name`), as field rules do.
    error = PydanticCustomError("value_error", message)
    return ValidationError.from_exception_data(
        "RunSpec", [InitErrorDetails(type=error, loc=loc, input=value)]
    )


class RunSpec(Value):
    """Everything a sandbox needs to run one submission; the task on `execution_tasks`."""

    language: str = Field(min_length=1, max_length=64)
    version: str | None = None
    files: tuple[SourceFile, ...] = Field(min_length=1)
    stdin: Bytes = b""
    args: tuple[Arg, ...] = ()
    compile_args: tuple[Arg, ...] = ()  # given to the compiler, for compiled languages
    limits: Limits = Limits()
    compile_limits: Limits = DEFAULT_COMPILE_LIMITS
    annotations: Annotations = {}

    @model_validator(mode="after")
    def _runnable(self, info: ValidationInfo) -> RunSpec:
        if not _recorded(info):
            self._files_fit_one_tree()
            self._argv_fits()
        return self

    def _files_fit_one_tree(self) -> None:
        """Distinct names, and no file is another's directory (`x` with `x/y`)."""
        files: set[str] = set()
        dirs: dict[str, str] = {}  # a directory -> a file inside it
        for i, file in enumerate(self.files):
            parts = file.name.split("/")
            parents = ["/".join(parts[:n]) for n in range(1, len(parts))]
            if file.name in files:
                message = f"{file.name!r} is given twice; each file name must be unique"
            elif file.name in dirs:
                message = f"{file.name!r} is already the directory of {dirs[file.name]!r}"
            elif (parent := next((p for p in parents if p in files), None)) is not None:
                message = f"{parent!r} is a file, so {file.name!r} cannot be inside it"
            else:
                files.add(file.name)
                for directory in parents:
                    dirs.setdefault(directory, file.name)
                continue
            raise _field_error(("files", i, "name"), message, file.name)

    def _argv_fits(self) -> None:
        size = sum(len(a.encode("utf-8")) + 1 for a in (*self.args, *self.compile_args))
        size += sum(len(f.name) + 1 for f in self.files)
        if size > MAX_ARGV_BYTES:
            message = (
                f"args, compile_args and file names together must be at most {MAX_ARGV_BYTES} bytes"
            )
            raise _field_error(("args",), message, len(self.args))

    def annotated(self, annotations: dict[str, Any], compile_args: Sequence[str] = ()) -> RunSpec:
        """This spec with these annotations (and compiler options), checked as a submitted
        spec's are."""
        changed = {"annotations": annotations, "compile_args": tuple(compile_args)}
        return RunSpec.model_validate({**self.__dict__, **changed})

    @property
    def payload_bytes(self) -> int:
        """What the submission asks the store to keep: its files', stdin's and annotations'
        bytes."""
        kept = sum(len(f.content) for f in self.files) + len(self.stdin)
        return kept + size_of(self.annotations)


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
