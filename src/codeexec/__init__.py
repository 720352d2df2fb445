"""codeexec: run untrusted code with an event-sourced audit log, live events and replay."""

from codeexec.domain.coordinator import CoordinatorConfig, UserLimits
from codeexec.domain.model import Limits, RunResult, RunSpec, SandboxStatus, SourceFile
from codeexec.ports.read_model import ExecutionQuery, ExecutionView, Page
from codeexec.runtime import Codeexec, IdempotencyKeyReused, NotFound, Settings
from codeexec.service.admission import AdmissionRefused

__all__ = [
    "AdmissionRefused",
    "Codeexec",
    "CoordinatorConfig",
    "ExecutionQuery",
    "ExecutionView",
    "IdempotencyKeyReused",
    "Limits",
    "NotFound",
    "Page",
    "RunResult",
    "RunSpec",
    "SandboxStatus",
    "Settings",
    "SourceFile",
    "UserLimits",
]
