"""How a sandbox stage ended (`StageOutcome`) and one truthful status for it (`judge`).

Shared by the sandboxes: the local one fills the outcome from what its supervisor saw, the
Kubernetes one from its in-pod launcher's stage report (the same fields)."""

from __future__ import annotations

import signal as signals
from dataclasses import dataclass, field

from codeexec.domain.model import Limits, SandboxStatus


@dataclass
class StageOutcome:
    """What happened to one stage, before it is judged (`judge` below)."""

    exit_code: int | None = None
    signal: int | None = None
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    killed_for: str | None = None
    """Why we killed it: "wall", "cpu", "output" or "cancel"."""
    oom_kills: int = 0
    cpu_time_s: float | None = None
    wall_time_s: float | None = None
    memory_bytes: int | None = None
    error: str | None = None
    """Set when the box itself could not be set up (not the code's fault)."""
    timeline: dict[str, float] = field(default_factory=dict)
    """When each step happened (time.monotonic()): where a stage's time goes."""


def _signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def judge(outcome: StageOutcome, limits: Limits) -> tuple[SandboxStatus, str]:
    """The status of a stage and a short human explanation."""
    o = outcome
    if o.error is not None:
        return SandboxStatus.INTERNAL_ERROR, o.error
    if o.killed_for == "cancel":
        return SandboxStatus.CANCELLED, "cancelled: every process of the run was killed"
    if o.killed_for == "output":
        flags = (("stdout", o.stdout_truncated), ("stderr", o.stderr_truncated))
        which = [name for name, truncated in flags if truncated]
        return (
            SandboxStatus.OUTPUT_LIMIT_EXCEEDED,
            f"{' and '.join(which)} exceeded {limits.output_bytes} bytes; truncated and killed",
        )
    if o.killed_for == "memory":
        return (
            SandboxStatus.MEMORY_LIMIT_EXCEEDED,
            f"memory limit of {limits.memory_bytes} bytes: below what the runtime holds "
            "before the code starts",
        )
    if o.killed_for == "wall":
        return SandboxStatus.TIME_LIMIT_EXCEEDED, f"wall time limit of {limits.wall_time_s:g}s"
    cpu_spent = o.cpu_time_s is not None and o.cpu_time_s >= limits.cpu_time_s
    if (
        o.killed_for == "cpu"
        or o.signal == signals.SIGXCPU
        or (o.signal == signals.SIGKILL and cpu_spent)
    ):
        return SandboxStatus.TIME_LIMIT_EXCEEDED, f"CPU time limit of {limits.cpu_time_s:g}s"
    if o.oom_kills and o.exit_code != 0:
        return (
            SandboxStatus.MEMORY_LIMIT_EXCEEDED,
            f"memory limit of {limits.memory_bytes} bytes: killed by the OOM killer",
        )
    if o.signal == signals.SIGXFSZ:
        return (
            SandboxStatus.OUTPUT_LIMIT_EXCEEDED,
            f"file size limit of {limits.file_size_bytes} bytes (SIGXFSZ)",
        )
    if o.signal is not None:
        return SandboxStatus.SIGNALED, f"killed by {_signal_name(o.signal)}"
    if o.exit_code == 0:
        note = " (a process of the run was OOM-killed)" if o.oom_kills else ""
        return SandboxStatus.SUCCEEDED, "exited with 0" + note
    return SandboxStatus.RUNTIME_ERROR, f"exited with {o.exit_code}"
