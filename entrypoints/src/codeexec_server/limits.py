"""Admin-set limits: coordinator caps, per-user limits and the maxima of per-run resource limits.

Kept in `limits.json` under the data dir so they survive restarts, and pushed into the running
coordinator's policy whenever they change."""

from __future__ import annotations

from pathlib import Path

from codeexec.data_dir import write_private
from codeexec.domain.limits import LimitsDocument, ResourceMaxima, UserLimitsModel
from codeexec.runtime import Codeexec

__all__ = ["LimitsDocument", "LimitsPolicy", "ResourceMaxima", "UserLimitsModel"]


class LimitsPolicy:
    """The current limits document; `apply` hands the coordinator part to the runtime."""

    def __init__(self, path: Path, default: LimitsDocument) -> None:
        self.path = path
        self.document = default
        if path.exists():
            self.document = LimitsDocument.model_validate_json(path.read_text())

    def apply(self, runtime: Codeexec) -> None:
        runtime.coordinator.policy.set_config(self.document.coordinator_config())

    def replace(self, document: LimitsDocument, runtime: Codeexec | None) -> None:
        document.coordinator_config()  # raises ValueError before anything changes
        self.document = document
        write_private(self.path, document.model_dump_json(indent=2).encode())
        if runtime is not None:
            self.apply(runtime)
