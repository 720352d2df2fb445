"""Reads a pod object (plain JSON) for what a run needs: started, ended, or failed to start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codeexec_kubernetes.objects import CONTAINER

START_FAILURES = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}
"""Waiting reasons that mean the container will not start by itself."""


@dataclass(frozen=True)
class PodState:
    phase: str = "Pending"
    started: bool = False
    """The container runs or ran: its log exists."""
    terminated: dict[str, Any] | None = None
    """The container's terminated state (exitCode, reason, signal, message)."""
    pod_reason: str = ""
    """The pod's own reason, for example DeadlineExceeded or Evicted."""
    pod_message: str = ""
    start_failure: str | None = None
    """Why the container cannot start (image pull, config), with the kubelet's message."""
    unschedulable: str | None = None

    @property
    def ended(self) -> bool:
        return self.terminated is not None or self.phase in ("Succeeded", "Failed")


def read_pod(pod: dict[str, Any]) -> PodState:
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    container: dict[str, Any] = next(
        (c for c in status.get("containerStatuses") or [] if c.get("name") == CONTAINER), {}
    )
    state = container.get("state") or {}
    terminated = state.get("terminated")
    waiting = state.get("waiting") or {}
    start_failure = None
    if waiting.get("reason") in START_FAILURES:
        start_failure = f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
    unschedulable = None
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            unschedulable = condition.get("message") or "no node fits the pod"
    return PodState(
        phase=phase,
        started=bool(state.get("running")) or terminated is not None,
        terminated=terminated,
        pod_reason=status.get("reason") or "",
        pod_message=status.get("message") or "",
        start_failure=start_failure,
        unschedulable=unschedulable,
    )
