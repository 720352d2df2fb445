"""A Judge0 submission request: parsed leniently as Rails does, checked as Judge0 1.13.1 checks
it (same messages, `{"field": ["message"]}` errors), then turned into one of our run specs."""

from __future__ import annotations

import base64
import binascii
import io
import shlex
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codeexec.ports.sandbox import Language
from codeexec_server.compat.judge0.catalog import KB, Judge0Config, resolve
from codeexec_server.schemas import LimitsIn

Errors = dict[str, list[str]]


class Judge0Rejected(Exception):
    """The request breaks Judge0's rules: 422 with Judge0's error object."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(errors)
        self.errors = errors


class SubmissionIn(BaseModel):
    """Judge0's permitted submission parameters; anything else is ignored, as Rails does."""

    model_config = ConfigDict(extra="ignore")
    source_code: str | None = None
    language_id: int | None = None
    compiler_options: str | None = None
    command_line_arguments: str | None = None
    number_of_runs: int | None = None
    stdin: str | None = None
    expected_output: str | None = None
    cpu_time_limit: float | None = None
    cpu_extra_time: float | None = None
    wall_time_limit: float | None = None
    memory_limit: float | None = Field(default=None, description="KB")
    stack_limit: int | None = None
    max_processes_and_or_threads: int | None = None
    enable_per_process_and_thread_time_limit: bool | None = None
    enable_per_process_and_thread_memory_limit: bool | None = None
    max_file_size: int | None = Field(default=None, description="KB")
    redirect_stderr_to_stdout: bool | None = None
    callback_url: str | None = None
    additional_files: str | None = None
    enable_network: bool | None = None


NUMERIC = {"language_id", "number_of_runs", "stack_limit", "max_processes_and_or_threads"}
NUMERIC |= {"cpu_time_limit", "cpu_extra_time", "wall_time_limit", "memory_limit"}
NUMERIC |= {"max_file_size"}
# Our field names (from build_spec) -> Judge0's, for errors found by our own checks.
OUR_FIELDS = {
    "limits.cpu_time_s": "cpu_time_limit",
    "limits.wall_time_s": "wall_time_limit",
    "limits.memory_bytes": "memory_limit",
    "limits.processes": "max_processes_and_or_threads",
    "limits.file_size_bytes": "max_file_size",
    "args": "command_line_arguments",
    "compile_args": "compiler_options",
    "stdin": "stdin",
}


def parse(body: Any) -> SubmissionIn:
    if not isinstance(body, dict):
        raise Judge0Rejected({"submission": ["must be a JSON object"]})
    try:
        return SubmissionIn.model_validate(body)
    except ValidationError as error:
        errors: Errors = {}
        for e in error.errors():
            field = str(e["loc"][0]) if e["loc"] else "submission"
            message = "is not a number" if field in NUMERIC else "is invalid"
            errors.setdefault(field, []).append(message)
        raise Judge0Rejected(errors) from None


def decoded(text: str | None, field: str, errors: Errors) -> bytes | None:
    """Base64 as Judge0 clients send it (line breaks allowed), strictly checked."""
    if text is None:
        return None
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        errors.setdefault(field, []).append("is not valid base64")
        return None


def _between(
    errors: Errors, field: str, value: float | None, low: float, high: float, *, strict: bool
) -> None:
    if value is None:
        return
    if strict and value <= low:
        errors.setdefault(field, []).append(f"must be greater than {low:g}")
    elif not strict and value < low:
        errors.setdefault(field, []).append(f"must be greater than or equal to {low:g}")
    elif value > high:
        errors.setdefault(field, []).append(f"must be less than or equal to {high:g}")


def check_rules(s: SubmissionIn, config: Judge0Config, errors: Errors) -> None:
    """Judge0's model validations, with this server's configuration."""
    m = config.maxima
    _between(errors, "number_of_runs", s.number_of_runs, 0, 1, strict=True)
    _between(errors, "cpu_time_limit", s.cpu_time_limit, 0, m.cpu_time_s, strict=True)
    _between(errors, "cpu_extra_time", s.cpu_extra_time, 0, config.max_cpu_extra_time, strict=False)
    _between(errors, "wall_time_limit", s.wall_time_limit, 1, m.wall_time_s, strict=False)
    _between(errors, "memory_limit", s.memory_limit, 2048, m.memory_bytes // KB, strict=False)
    _between(errors, "stack_limit", s.stack_limit, 0, config.max_stack_limit, strict=False)
    _between(
        errors,
        "max_processes_and_or_threads",
        s.max_processes_and_or_threads,
        0,
        m.processes,
        strict=True,
    )
    _between(errors, "max_file_size", s.max_file_size, 0, m.file_size_bytes // KB, strict=False)
    for name in (
        "enable_per_process_and_thread_time_limit",
        "enable_per_process_and_thread_memory_limit",
    ):
        if getattr(s, name):
            errors.setdefault(name, []).append("this option cannot be enabled")
    for name in ("compiler_options", "command_line_arguments"):
        if len(getattr(s, name) or "") > 512:
            errors.setdefault(name, []).append("is too long (maximum is 512 characters)")
    if s.enable_network:
        errors.setdefault("enable_network", []).append("enabling network is not allowed")
    if s.redirect_stderr_to_stdout:
        message = "redirecting stderr to stdout is not supported by this server"
        errors.setdefault("redirect_stderr_to_stdout", []).append(message)


def unzipped(archive: bytes, limit_bytes: int, errors: Errors) -> list[tuple[str, bytes]]:
    """The files of `additional_files` (a zip), directories implied by their paths."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            if sum(i.file_size for i in members) > limit_bytes:
                errors["additional_files"] = [f"unzip to more than {limit_bytes // KB} KB"]
                return []
            # Read with a bound too: the sizes in the zip's directory are the sender's claim.
            return [(i.filename, zf.open(i).read(limit_bytes + 1)) for i in members]
    except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError):
        errors["additional_files"] = ["is not a valid zip archive"]
        return []


def limits_of(s: SubmissionIn, config: Judge0Config) -> LimitsIn:
    """Judge0's limits in our units. The CPU limit includes the extra time: the run is killed
    only past both, and still judged Time Limit Exceeded past the limit alone."""
    d = config.defaults
    cpu = s.cpu_time_limit if s.cpu_time_limit is not None else d.cpu_time_s
    return LimitsIn(
        cpu_time_s=cpu + (s.cpu_extra_time or 0.0),
        wall_time_s=s.wall_time_limit,
        memory_bytes=int(s.memory_limit * KB) if s.memory_limit is not None else None,
        processes=s.max_processes_and_or_threads,
        file_size_bytes=s.max_file_size * KB if s.max_file_size is not None else None,
    )


def echo(s: SubmissionIn, config: Judge0Config, expected: bytes | None) -> dict[str, Any]:
    """What Judge0 stores with a submission besides its source and stdin, defaults filled in:
    kept beside the execution so reads and callbacks can answer as Judge0 does."""
    d = config.defaults
    return {
        "language_id": s.language_id,
        "compiler_options": s.compiler_options,
        "command_line_arguments": s.command_line_arguments,
        "number_of_runs": s.number_of_runs or 1,
        "expected_output": base64.b64encode(expected).decode() if expected is not None else None,
        "cpu_time_limit": s.cpu_time_limit if s.cpu_time_limit is not None else d.cpu_time_s,
        "cpu_extra_time": s.cpu_extra_time or 0.0,
        "wall_time_limit": s.wall_time_limit or d.wall_time_s,
        "memory_limit": int(s.memory_limit) if s.memory_limit else d.memory_bytes // KB,
        "stack_limit": s.stack_limit or config.stack_limit,
        "max_processes_and_or_threads": s.max_processes_and_or_threads or d.processes,
        "enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "max_file_size": s.max_file_size or d.file_size_bytes // KB,
        "redirect_stderr_to_stdout": False,
        "callback_url": s.callback_url or None,
        "enable_network": False,
    }


@dataclass(frozen=True)
class RunInputs:
    """A Judge0 request's run, decoded: what our spec is built from."""

    language: Language | None
    source_file: str
    source: bytes
    files: list[tuple[str, bytes]]
    stdin: bytes
    expected_output: bytes | None
    args: list[str]
    compile_args: list[str]


def run_inputs(
    s: SubmissionIn, base64_encoded: bool, languages: Sequence[Language], config: Judge0Config
) -> tuple[RunInputs, Errors]:
    """Everything our spec needs, decoded and checked; the errors Judge0 would give."""
    errors: Errors = {}
    check_rules(s, config, errors)
    found = None
    if s.language_id is None:
        errors["language_id"] = ["can't be blank"]
    elif (found := resolve(s.language_id, languages)) is None:
        errors["language_id"] = [f"language with id {s.language_id} doesn't exist"]
    if not s.source_code:
        errors.setdefault("source_code", []).append("can't be blank")
    raw = {"source_code": s.source_code, "stdin": s.stdin, "expected_output": s.expected_output}
    if base64_encoded:
        text = {k: decoded(v, k, errors) for k, v in raw.items()}
    else:
        text = {k: v.encode("utf-8", "surrogatepass") if v else None for k, v in raw.items()}
    extra: list[tuple[str, bytes]] = []
    if s.additional_files:
        archive = decoded(s.additional_files, "additional_files", errors)
        if archive is not None:
            extra = unzipped(archive, config.max_extract_size * KB, errors)
    args = _split(s.command_line_arguments, "command_line_arguments", errors)
    # Judge0 hands compiler_options to a shell; here the same words go to the compiler, no shell.
    compile_args = _split(s.compiler_options, "compiler_options", errors)
    if compile_args and found is not None and not found[1].compiled:
        errors.setdefault("compiler_options", []).append(
            "setting compiler options is only allowed for compiled languages"
        )
    inputs = RunInputs(
        language=found[1] if found else None,
        source_file=found[0].source_file if found else "",
        source=text["source_code"] or b"",
        files=extra,
        stdin=text["stdin"] or b"",
        expected_output=text["expected_output"],
        args=args,
        compile_args=compile_args,
    )
    return inputs, errors


def _split(text: str | None, field: str, errors: Errors) -> list[str]:
    try:
        return shlex.split(text or "")
    except ValueError as error:
        errors.setdefault(field, []).append(f"cannot be split: {error}")
        return []


def our_field(name: str) -> str:
    if name.startswith("files."):
        return "additional_files" if not name.startswith("files.0.") else "source_code"
    return OUR_FIELDS.get(name, name)
