"""A submission as Judge0 shows it: its status mapped from ours, the fields asked for, text or
base64, Judge0's units (seconds as decimal strings, KB) and timestamp format."""

from __future__ import annotations

import base64
import io
import signal
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from codeexec.domain.model import RunSpec
from codeexec.ports.read_model import ExecutionView
from codeexec_server.compat.judge0.catalog import BY_ID, KB, STATUS_NAMES, id_for

# Every field of Judge0 1.13.1's submission serializer, in its order (`fields=*`).
AVAILABLE_FIELDS = (
    "source_code",
    "language_id",
    "stdin",
    "expected_output",
    "stdout",
    "status_id",
    "created_at",
    "finished_at",
    "time",
    "memory",
    "stderr",
    "token",
    "number_of_runs",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "compile_output",
    "exit_code",
    "exit_signal",
    "message",
    "wall_time",
    "compiler_options",
    "command_line_arguments",
    "redirect_stderr_to_stdout",
    "callback_url",
    "additional_files",
    "enable_network",
    "status",
    "language",
)
DEFAULT_FIELDS: tuple[str, ...] = ("token", "time", "memory", "stdout", "stderr")
DEFAULT_FIELDS += ("compile_output", "message", "status")
TEXT_FIELDS = {"source_code", "stdin", "expected_output", "stdout", "stderr", "compile_output"}
SPEC_FIELDS = {"source_code", "stdin", "additional_files"}
DECIMAL_FIELDS = {"time", "wall_time", "cpu_time_limit", "cpu_extra_time", "wall_time_limit"}
SIGNAL_STATUS: dict[int, int] = {
    signal.SIGSEGV: 7,
    signal.SIGXFSZ: 8,
    signal.SIGFPE: 9,
    signal.SIGABRT: 10,
}
IN_FLIGHT = {"requested": 1, "queued": 1, "scheduled": 1, "running": 2}
# Our terminal statuses that need no further look, and what Judge0 calls them. A memory limit
# kills with SIGKILL under Judge0 too (Other); an output limit is a file-size limit (SIGXFSZ).
TERMINAL = {
    "time_limit_exceeded": 5,
    "compilation_error": 6,
    "output_limit_exceeded": 8,
    "runtime_error": 11,
    "memory_limit_exceeded": 12,
    "internal_error": 13,
    "cancelled": 13,
    "rejected": 13,
}


NOT_UTF8 = (
    "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true "
    "query parameter"
)


class NotUtf8(Exception):
    """A text field is not valid UTF-8 and base64 was not asked for (Judge0 answers 400)."""


def judge0_time(moment: datetime | None) -> str | None:
    """Rails' JSON form: UTC with milliseconds, `2024-04-17T23:28:19.123Z`."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC) if moment.tzinfo else moment
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def decimal(value: float | None) -> str | None:
    """Judge0's decimal columns serialize as strings ("0.012", "5.0")."""
    return None if value is None else repr(round(float(value), 3))


def judged(output: bytes | None) -> bytes:
    # Judge0 compares outputs with trailing whitespace cut from every line and from the end
    # (Ruby's rstrip also drops NUL).
    lines = (output or b"").split(b"\n")
    return b"\n".join(line.rstrip(b" \t\n\v\f\r\0") for line in lines).rstrip(b" \t\n\v\f\r\0")


def status_id(view: ExecutionView, echo: dict[str, Any]) -> int:
    if not view.terminal:
        return IN_FLIGHT.get(view.state, 1)
    if view.status in TERMINAL:
        return TERMINAL[view.status]
    if view.status == "signaled":
        return SIGNAL_STATUS.get(view.signal or 0, 12)
    if view.status != "succeeded":
        return 13
    limit = echo.get("cpu_time_limit")
    if view.cpu_time_s is not None and limit is not None and view.cpu_time_s > limit:
        return 5  # within the extra time, so not killed; still over the limit
    expected = echo.get("expected_output")
    if expected is not None and judged(base64.b64decode(expected)) != judged(view.stdout):
        return 4
    return 3


@dataclass
class Submission:
    """An execution with what Judge0 keeps beside it (`echo`) and, if needed, its spec."""

    view: ExecutionView
    echo: dict[str, Any]
    spec: RunSpec | None = None

    def value(self, field: str) -> Any:
        v, status = self.view, status_id(self.view, self.echo)
        ran = v.terminal and status not in (6, 13)
        language_id = self.echo.get("language_id") or id_for(v.language)
        values: dict[str, Any] = {
            "token": str(v.id),
            "status": {"id": status, "description": STATUS_NAMES[status]},
            "status_id": status,
            "language_id": language_id,
            "language": {"id": language_id, "name": _language_name(language_id, v)},
            "created_at": judge0_time(v.created_at),
            "finished_at": judge0_time(v.finished_at),
            "time": decimal(v.cpu_time_s) if ran else None,
            "wall_time": decimal(v.wall_time_s) if ran else None,
            "memory": v.memory_bytes // KB if ran and v.memory_bytes is not None else None,
            "stdout": v.stdout or None,
            "stderr": v.stderr or None,
            "compile_output": v.compile_output or None,
            "exit_code": (v.exit_code or 0) if ran else None,
            "exit_signal": v.signal if ran else None,
            "message": _message(v, status),
        }
        if field in values:
            return values[field]
        if field in SPEC_FIELDS:
            return self._from_spec(field)
        if field == "expected_output":
            expected = self.echo.get("expected_output")
            return base64.b64decode(expected) if expected is not None else None
        return self.echo.get(field, _spec_limit(field, self.spec))

    def _from_spec(self, field: str) -> Any:
        spec = self.spec
        if spec is None:
            return None
        if field == "source_code":
            return spec.files[0].content
        if field == "stdin":
            return spec.stdin or None
        others = spec.files[1:]
        if not others:
            return None
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            for file in others:
                zf.writestr(file.name, file.content)
        return base64.b64encode(archive.getvalue()).decode()

    def render(self, fields: tuple[str, ...], base64_encoded: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in fields:
            value = self.value(field)
            if isinstance(value, bytes):
                value = _text(value, base64_encoded)
            elif field == "message" and base64_encoded and value is not None:
                value = base64.b64encode(value.encode()).decode()  # as Judge0 does
            elif field in DECIMAL_FIELDS and isinstance(value, int | float):
                value = decimal(value)
            out[field] = value
        return out


def _message(view: ExecutionView, status: int) -> str | None:
    """Ours, for what Judge0 explains too: none for a program that exited normally (Accepted
    or Wrong Answer), what the limit was for one judged over it within its extra time."""
    if not view.terminal or status in (3, 4):
        return None
    if view.status == "succeeded":
        return f"CPU time {view.cpu_time_s:g}s is over the CPU time limit"
    return view.message or None


def _text(data: bytes, base64_encoded: bool) -> str:
    if base64_encoded:
        return base64.b64encode(data).decode()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotUtf8 from None


def _language_name(language_id: int | None, view: ExecutionView) -> str:
    j0 = BY_ID.get(language_id or 0)
    return j0.name(view.version or "") if j0 else f"{view.language} {view.version or ''}".strip()


def _spec_limit(field: str, spec: RunSpec | None) -> Any:
    """Limits of an execution made through our own API, in Judge0's units."""
    if spec is None:
        return None
    limits = spec.limits
    return {
        "cpu_time_limit": limits.cpu_time_s,
        "wall_time_limit": limits.wall_time_s,
        "memory_limit": limits.memory_bytes // KB,
        "max_processes_and_or_threads": limits.processes,
        "max_file_size": limits.file_size_bytes // KB,
        "number_of_runs": 1,
        "command_line_arguments": " ".join(spec.args) or None,
    }.get(field)
