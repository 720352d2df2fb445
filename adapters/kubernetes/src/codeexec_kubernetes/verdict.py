"""One truthful status for a run, from the container's state and the launcher's stage reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codeexec.adapters.stage_verdict import StageOutcome
from codeexec.adapters.stage_verdict import judge as judge_stage
from codeexec.domain.model import Limits, RunSpec, SandboxStatus
from codeexec_kubernetes.podstate import PodState


@dataclass(frozen=True)
class Verdict:
    status: SandboxStatus
    message: str
    report: dict[str, Any] | None = None
    """The stage report the status comes from (exit code, signal, times)."""


def judge(
    spec: RunSpec,
    pod: PodState,
    reports: list[dict[str, Any]],
    *,
    cancelled: bool = False,
    output_exceeded: bool = False,
    overdue: bool = False,
    lost: str | None = None,
) -> Verdict:
    """`lost`: why the run's record is incomplete (frames missing, pod deleted by someone)."""
    last = reports[-1] if reports else None
    if cancelled:
        return Verdict(SandboxStatus.CANCELLED, "cancelled: the pod was deleted", last)
    if output_exceeded:
        limit = spec.limits.output_bytes
        return Verdict(
            SandboxStatus.OUTPUT_LIMIT_EXCEEDED,
            f"output exceeded {limit} bytes; truncated and the pod deleted",
            last,
        )
    if pod.pod_reason == "DeadlineExceeded" or overdue:
        return Verdict(
            SandboxStatus.TIME_LIMIT_EXCEEDED,
            f"the pod's deadline passed ({pod.pod_message or 'activeDeadlineSeconds'})",
            last,
        )
    terminated = pod.terminated or {}
    if terminated.get("reason") == "OOMKilled":
        memory = max(spec.limits.memory_bytes, spec.compile_limits.memory_bytes)
        return Verdict(
            SandboxStatus.MEMORY_LIMIT_EXCEEDED,
            f"memory limit of {memory} bytes: the container was OOM-killed",
            last,
        )
    if pod.start_failure is not None:
        return Verdict(SandboxStatus.INTERNAL_ERROR, f"the pod cannot start: {pod.start_failure}")
    if pod.unschedulable is not None and not pod.started:
        return Verdict(SandboxStatus.INTERNAL_ERROR, f"unschedulable: {pod.unschedulable}")
    if lost is not None:
        return Verdict(SandboxStatus.INTERNAL_ERROR, lost, last)
    if last is None:
        why = pod.pod_reason or terminated.get("reason") or pod.phase
        code = terminated.get("exitCode")
        return Verdict(
            SandboxStatus.INTERNAL_ERROR,
            f"the launcher ended without a report (pod {why}, exit code {code})",
        )
    if last.get("error"):
        return Verdict(SandboxStatus.INTERNAL_ERROR, str(last["error"]), last)
    if last["stage"] == "compile":
        status, message = _stage(last, spec.compile_limits)
        if status not in (SandboxStatus.SUCCEEDED, SandboxStatus.CANCELLED):
            return Verdict(SandboxStatus.COMPILATION_ERROR, f"compilation: {message}", last)
        return Verdict(SandboxStatus.INTERNAL_ERROR, "the run stage never reported", last)
    status, message = _stage(last, spec.limits)
    return Verdict(status, message, last)


def _stage(report: dict[str, Any], limits: Limits) -> tuple[SandboxStatus, str]:
    """The launcher's stage report carries what the local supervisor sees: judged alike."""
    outcome = StageOutcome(
        exit_code=report.get("exit_code"),
        signal=report.get("signal"),
        killed_for=report.get("killed_for"),
        cpu_time_s=report.get("cpu_time_s"),
        stdout_truncated=bool(report.get("stdout_truncated")),
        stderr_truncated=bool(report.get("stderr_truncated")),
    )
    return judge_stage(outcome, limits)
