"""A Piston v2 execute request, checked as Piston checks it (same messages) and turned into the
inputs of one of our runs: files decoded, limits in our units."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from codeexec.domain.model import DEFAULT_COMPILE_LIMITS, Limits
from codeexec_server.schemas import LimitsIn


class PistonRejected(Exception):
    """400 with Piston's `{"message"}`."""


@dataclass(frozen=True)
class ExecuteInputs:
    language: str
    version: str | None
    files: list[tuple[str | None, bytes]]  # name (None: Piston picks one), content
    stdin: bytes
    args: list[str]
    run_limits: LimitsIn
    compile_limits: Limits


# name -> (our limit field, scale from Piston's unit to ours)
RUN = {
    "run_timeout": ("wall_time_s", 0.001),
    "run_cpu_time": ("cpu_time_s", 0.001),
    "run_memory_limit": ("memory_bytes", 1),
}
COMPILE = {
    "compile_timeout": ("wall_time_s", 0.001),
    "compile_cpu_time": ("cpu_time_s", 0.001),
    "compile_memory_limit": ("memory_bytes", 1),
}


def _file(i: int, file: Any) -> tuple[str | None, bytes]:
    if not isinstance(file, dict) or not isinstance(file.get("content"), str):
        raise PistonRejected(f"files[{i}].content is required as a string")
    name = file.get("name") or None
    if name is not None and not isinstance(name, str):
        raise PistonRejected(f"files[{i}].name must be a string")
    content, encoding = file["content"], file.get("encoding")
    try:
        if encoding == "base64":
            return name, base64.b64decode(content, validate=True)
        if encoding == "hex":
            return name, bytes.fromhex(content)
    except (binascii.Error, ValueError):
        raise PistonRejected(f"files[{i}].content is not valid {encoding}") from None
    return name, content.encode("utf-8", "surrogatepass")  # utf8, also for unknown encodings


def _limit(body: dict[str, Any], name: str, ceiling: float, scale: float) -> float | None:
    value = body.get(name)
    if value is None or value == 0 or value is False:
        return None  # Piston skips falsy constraints: the default applies
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PistonRejected(f"If specified, {name} must be a number")
    if value == -1 and name.endswith("memory_limit"):
        return None  # -1: "no limit", which here is the default
    if value < 0:
        raise PistonRejected(f"{name} must be non-negative")
    configured = ceiling / scale
    if value > configured:
        raise PistonRejected(f"{name} cannot exceed the configured limit of {configured:g}")
    return value * scale


def parse(body: Any, maxima: Limits) -> ExecuteInputs:
    if not isinstance(body, dict):
        raise PistonRejected("the body must be a JSON object")
    language, version = body.get("language"), body.get("version")
    if not language or not isinstance(language, str):
        raise PistonRejected("language is required as a string")
    if version is not None and not isinstance(version, str):
        raise PistonRejected("version must be a string (a semver range, or *)")
    files = body.get("files")
    if not isinstance(files, list):
        raise PistonRejected("files is required as an array")
    decoded = [_file(i, f) for i, f in enumerate(files)]
    if not any(f.get("encoding") in (None, "utf8") for f in files if isinstance(f, dict)):
        raise PistonRejected("files must include at least one utf8 encoded file")
    stdin, args = body.get("stdin") or "", body.get("args") or []
    if not isinstance(stdin, str):
        raise PistonRejected("stdin must be a string")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise PistonRejected("args must be an array of strings")
    if not stdin.endswith("\n"):
        stdin += "\n"  # Piston ends stdin with a newline
    run = {
        ours: _limit(body, name, getattr(maxima, ours), scale)
        for name, (ours, scale) in RUN.items()
    }
    compiling = DEFAULT_COMPILE_LIMITS.model_dump()
    for name, (ours, scale) in COMPILE.items():
        value = _limit(body, name, getattr(DEFAULT_COMPILE_LIMITS, ours), scale)
        if value is not None:
            compiling[ours] = int(value) if ours == "memory_bytes" else value
    try:
        compile_limits = Limits(**compiling)
        run_limits = LimitsIn.model_validate(
            {k: int(v) if k == "memory_bytes" else v for k, v in run.items() if v is not None}
        )
    except ValueError as error:
        raise PistonRejected(f"limits: {error}") from None
    return ExecuteInputs(
        language,
        version,
        decoded,
        stdin.encode("utf-8", "surrogatepass"),
        args,
        run_limits,
        compile_limits,
    )
