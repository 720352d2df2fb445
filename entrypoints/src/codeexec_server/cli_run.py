"""`codeexec run`: run one file with live output, embedded or through a server.

Exit codes: the program's own exit code; 128+N when killed by signal N; 124 time limit,
125 memory limit, 126 output limit, 127 compilation error, 130 cancelled, 75 rejected,
70 internal error, 69 server unreachable, 2 usage error."""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codeexec.domain.events import ExecutionOutput
from codeexec.domain.model import RunSpec, SourceFile
from codeexec.ports.sandbox import Language
from codeexec.runtime import Codeexec, Settings
from codeexec_server.cli_client import ApiClient
from codeexec_server.sandboxes import make_sandbox
from codeexec_server.schemas import ExecutionOut

EXIT_CODES = {
    "time_limit_exceeded": 124,
    "memory_limit_exceeded": 125,
    "output_limit_exceeded": 126,
    "compilation_error": 127,
    "cancelled": 130,
    "rejected": 75,
    "internal_error": 70,
}
EXIT_USAGE, EXIT_UNAVAILABLE = 2, 69
SETTLE_S = 30  # how long the view may lag behind the stream's end before 70 is reported
EXTENSIONS = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".ts": "typescript",
    ".c": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".java": "java",
    ".rs": "rust",
    ".go": "go",
    ".rb": "ruby",
    ".php": "php",
    ".lua": "lua",
    ".pl": "perl",
    ".sh": "bash",
    ".fake": "fake",
}
COLOURS = {"ok": "\x1b[32m", "bad": "\x1b[31m", "dim": "\x1b[2m", "end": "\x1b[0m"}


class UsageError(Exception):
    pass


def exit_code_for(status: str, exit_code: int | None, signal: int | None) -> int:
    if status == "succeeded":
        return 0
    if status == "runtime_error":
        return exit_code if exit_code else 1
    if status == "signaled":
        return 128 + (signal or 0) if signal else 137
    return EXIT_CODES.get(status, 70)


def guess_language(path: Path, languages: Sequence[Language]) -> str:
    suffix = path.suffix.lower()
    for lang in languages:
        ext = lang.extension if lang.extension.startswith(".") else "." + lang.extension
        if lang.extension and ext == suffix:
            return lang.name
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    raise UsageError(f"cannot guess the language of {path.name}; pass --language")


def file_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", path.name) or "main"


class Display:
    """Live output to stdout/stderr; status lines (with colour) only on a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def output(self, stream: str, data: bytes) -> None:
        target = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        target.write(data)
        target.flush()

    def progress(self, state: str) -> None:
        if self.tty:
            sys.stderr.write(f"{COLOURS['dim']}· {state}{COLOURS['end']}\n")

    def final(self, result: dict[str, Any]) -> None:
        status = str(result["status"])
        ok = status == "succeeded"
        detail = f" ({result['message']})" if result.get("message") else ""
        wall = result.get("wall_time_s")
        timing = f" in {wall:.3f} s" if isinstance(wall, float | int) else ""
        if self.tty:
            colour = COLOURS["ok" if ok else "bad"]
            sys.stderr.write(f"{colour}{status}{timing}{detail}{COLOURS['end']}\n")
        elif not ok:
            sys.stderr.write(f"codeexec: {status}{detail}\n")


async def run_embedded(
    path: Path, source: bytes, language: str | None, stdin: bytes, sandbox: str, display: Display
) -> dict[str, Any]:
    runtime = Codeexec(Settings(), sandbox=make_sandbox(sandbox))
    await runtime.start()
    try:
        name = language or guess_language(path, runtime.language_list)
        spec = RunSpec(
            language=name,
            files=(SourceFile(name=file_name(path), content=source),),
            stdin=stdin,
        )
        view = await runtime.submit("cli", spec)
        async for event in runtime.events(view.id):
            if isinstance(event, ExecutionOutput):
                display.output(event.stream, event.data)
            elif event.type_name in ("ExecutionQueued", "ExecutionStarted"):
                display.progress(event.type_name.removeprefix("Execution").lower())
        view = await runtime.wait(view.id, 10.0)
        return ExecutionOut.of(view).model_dump(mode="json")
    finally:
        await runtime.stop()


async def run_remote(
    path: Path,
    source: bytes,
    language: str | None,
    stdin: bytes,
    server: str,
    key: str | None,
    display: Display,
) -> dict[str, Any]:
    async with ApiClient(server, key) as client:
        if language is None:
            listed = await client.request("GET", "/api/v1/languages")
            langs = [Language(x["name"], x["version"], extension=x["extension"]) for x in listed]
            language = guess_language(path, langs)
        body = {
            "language": language,
            "files": [
                {
                    "name": file_name(path),
                    "content": base64.b64encode(source).decode(),
                    "encoding": "base64",
                }
            ],
            "stdin": base64.b64encode(stdin).decode(),
            "stdin_encoding": "base64",
        }
        created = await client.request("POST", "/api/v1/executions", json=body)
        async for event in client.events(created["id"]):
            if event.event == "ExecutionOutput":
                display.output(event.data["stream"], base64.b64decode(event.data["data"]))
            elif event.event in ("ExecutionQueued", "ExecutionStarted"):
                display.progress(event.event.removeprefix("Execution").lower())
        return await _ended(client, created["id"])


async def _ended(client: ApiClient, execution_id: str) -> dict[str, Any]:
    """The execution once its view shows the end the event stream just showed: the server
    waits (bounded) where its read model applies the terminal event a moment later."""
    path = f"/api/v1/executions/{execution_id}?wait=true&timeout={SETTLE_S:g}"
    result: dict[str, Any] = await client.request("GET", path)
    return result
