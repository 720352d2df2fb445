"""Run specs and hand-written launcher frames for the tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from codeexec.domain.model import Limits, RunSpec, SourceFile
from codeexec_kubernetes import KubernetesSandbox

SandboxFactory = Callable[..., Awaitable[KubernetesSandbox]]


def python(source: str | bytes, stdin: bytes = b"", **limits: Any) -> RunSpec:
    content = source.encode() if isinstance(source, str) else source
    return RunSpec(
        language="python",
        files=(SourceFile(name="main.py", content=content),),
        stdin=stdin,
        limits=Limits(**limits),
    )


class Frames:
    """Log lines as the launcher writes them, for pods the test plays by hand."""

    def __init__(self) -> None:
        self.seq = 0

    def line(self, kind: str, data: str) -> bytes:
        self.seq += 1
        return f"cx {self.seq} {kind} {data}\n".encode()

    def out(self, data: bytes, kind: str = "ro") -> bytes:
        return self.line(kind, base64.b64encode(data).decode())

    def report(self, **fields: Any) -> bytes:
        report = {
            "stage": "run",
            "exit_code": 0,
            "signal": None,
            "killed_for": None,
            "cpu_time_s": 0.01,
            "wall_time_s": 0.02,
            "memory_bytes": 1000,
            "stdout_truncated": False,
            "stderr_truncated": False,
            **fields,
        }
        return self.line("s", json.dumps(report))

    def end(self) -> bytes:
        return self.line("x", "")
