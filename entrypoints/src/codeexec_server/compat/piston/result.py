"""An execution's result as Piston's execute answers: `run` and, for compiled languages,
`compile`, each with stdout, stderr, their interleaving (`output`), code, signal, Piston's
isolate status, times in ms and memory in bytes."""

from __future__ import annotations

import re
import signal as signals
from typing import Any

from codeexec.domain.events import ExecutionOutput
from codeexec.ports.read_model import ExecutionView
from codeexec.runtime import Codeexec
from codeexec_server.compat.running import recorded

# Our terminal statuses as isolate's (Piston passes isolate's status through).
ISOLATE_STATUS = {
    "succeeded": None,
    "runtime_error": "RE",
    "signaled": "SG",
    "memory_limit_exceeded": "SG",  # the OOM killer's SIGKILL, as isolate reports it
    "time_limit_exceeded": "TO",
}
KILLED = {"TO", "OL", "EL"}  # Piston reports these as killed by SIGKILL


def _signal_name(number: int | None) -> str | None:
    if number is None:
        return None
    try:
        return signals.Signals(number).name
    except ValueError:
        return None


def _text(data: bytes | bytearray) -> str:
    return data.decode("utf-8", "replace")  # Piston's output is text; so was Node's


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


async def _chunks(runtime: Codeexec, view: ExecutionView) -> dict[str, bytearray]:
    """The recorded output, in the order produced, per stage: `compile`/`run` for each
    stream and `<stage>.output` for both interleaved."""
    found = {k: bytearray() for k in ("compile.stdout", "compile.stderr", "compile.output")}
    found.update({k: bytearray() for k in ("run.stdout", "run.stderr", "run.output")})
    async with recorded(runtime, view) as events:
        async for event in events:
            if isinstance(event, ExecutionOutput):
                found[f"{event.stage}.{event.stream}"] += event.data
                found[f"{event.stage}.output"] += event.data
    return found


def _run_stage(view: ExecutionView, output: bytes) -> dict[str, Any]:
    status = ISOLATE_STATUS.get(view.status, "XX")
    if view.status == "output_limit_exceeded":
        status = "OL" if view.stdout_truncated or not view.stderr_truncated else "EL"
    name = _signal_name(view.signal)
    if status in KILLED or view.status == "memory_limit_exceeded":
        name = "SIGKILL"
    return {
        "stdout": _text(view.stdout),
        "stderr": _text(view.stderr),
        "output": _text(output),
        "code": view.exit_code if name is None else None,
        "signal": name,
        "message": view.message if status is not None else None,
        "status": status,
        "cpu_time": _ms(view.cpu_time_s),
        "wall_time": _ms(view.wall_time_s),
        "memory": view.memory_bytes,
    }


def _compile_stage(view: ExecutionView, chunks: dict[str, bytearray]) -> dict[str, Any]:
    failed = view.status == "compilation_error"
    code: int | None = 0
    name: str | None = None
    if failed:  # our message says how the compiler ended: "compilation: exited with 1"
        exited = re.search(r"exited with (\d+)", view.message)
        killed = re.search(r"killed by (SIG[A-Z0-9]+)", view.message)
        code = int(exited.group(1)) if exited else (None if killed else 1)
        name = killed.group(1) if killed else None
    return {
        "stdout": _text(chunks["compile.stdout"]),
        "stderr": _text(chunks["compile.stderr"]),
        # Our compile output is the one interleaved record; it is kept even when no chunk
        # was recorded as an event.
        "output": _text(view.compile_output or b""),
        "code": code,
        "signal": name,
        "message": view.message if failed else None,
        "status": ("SG" if name else "RE") if failed else None,
        "cpu_time": _ms(view.cpu_time_s) if failed else None,
        "wall_time": _ms(view.wall_time_s) if failed else None,
        "memory": view.memory_bytes if failed else None,
    }


async def piston_result(
    runtime: Codeexec, view: ExecutionView, language: str, compiled: bool
) -> dict[str, Any]:
    # The events are read only when the view cannot say it all: the order of stdout and
    # stderr when both have text, and the compiler's streams.
    if compiled or (view.stdout and view.stderr):
        chunks = await _chunks(runtime, view)
    else:
        chunks = {"run.output": bytearray(view.stdout or view.stderr)}
    answer: dict[str, Any] = {"language": language, "version": view.version}
    if compiled:
        answer["compile"] = _compile_stage(view, chunks)
    if compiled and view.status == "compilation_error":
        answer["run"] = answer["compile"]  # as Piston does when the run stage never started
    else:
        answer["run"] = _run_stage(view, bytes(chunks["run.output"]))
    return answer
