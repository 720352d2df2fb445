"""Helpers for the sandbox tests: build specs, run code, and look at the host's processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

from codeexec.adapters.local_sandbox import BubblewrapSandbox
from codeexec.domain.model import Limits, RunResult, RunSpec, SourceFile

UID_COUNT = 64


def spec(
    language: str,
    code: str | bytes,
    *,
    name: str | None = None,
    stdin: bytes = b"",
    args: tuple[str, ...] = (),
    limits: Limits | None = None,
    extra: tuple[SourceFile, ...] = (),
    **kw: object,
) -> RunSpec:
    ext = {
        "python": "py",
        "bash": "sh",
        "javascript": "js",
        "c": "c",
        "cpp": "cpp",
        "java": "java",
        "rust": "rs",
        "go": "go",
        "ruby": "rb",
        "php": "php",
        "perl": "pl",
    }[language]
    content = code.encode() if isinstance(code, str) else code
    return RunSpec(
        language=language,
        files=(SourceFile(name=name or f"main.{ext}", content=content), *extra),
        stdin=stdin,
        args=args,
        limits=limits or Limits(),
        **kw,
    )  # type: ignore[arg-type]


async def run(box: BubblewrapSandbox, language: str, code: str | bytes, **kw: object) -> RunResult:
    started = await box.start(uuid.uuid4().hex, spec(language, code, **kw))  # type: ignore[arg-type]
    return await started.result()


def _host_processes() -> Iterator[tuple[int, int, bytes]]:
    """(pid, real uid, cmdline) of every process on the host."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as f:
                status = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        uid_line = next(line for line in status.splitlines() if line.startswith(b"Uid:"))
        yield int(entry), int(uid_line.split()[1]), cmdline


def box_processes(uid_base: int) -> list[int]:
    """Host pids running as any of the sandbox's run uids."""
    return [pid for pid, uid, _ in _host_processes() if uid_base <= uid < uid_base + UID_COUNT]


def processes_named(name: str) -> list[int]:
    me = os.getpid()
    return [pid for pid, _, cmd in _host_processes() if name.encode() in cmd and pid != me]


def write_host_file(path: str, text: str, mode: int = 0o644) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def read_host_file(path: str) -> str:
    with open(path) as f:
        return f.read()


def host_entries(path: str) -> set[str]:
    return set(os.listdir(path)) if os.path.isdir(path) else set()
