"""Admin-set limits: coordinator caps, per-user limits and the maxima of per-run resource limits.

They live in the event store as `LimitsChanged` events (`runtime.operations.limits`), so every
coordinator and API process, on any host, applies a change. Until an admin changes them the
configured default is in force. A `limits.json` left in the data dir by an earlier version is
adopted once, as the first change, when the runtime is attached."""

from __future__ import annotations

from pathlib import Path

from codeexec.domain.limits import LimitsDocument, ResourceMaxima, UserLimitsModel
from codeexec.operations import Limits
from codeexec.runtime import Codeexec

__all__ = ["LimitsDocument", "LimitsPolicy", "ResourceMaxima", "UserLimitsModel"]


class LimitsPolicy:
    """The limits document in force: the latest stored change, else the default."""

    def __init__(self, path: Path, default: LimitsDocument) -> None:
        self.path = path  # an old limits.json, adopted on attach
        self.default = default
        self._limits: Limits | None = None

    async def attach(self, runtime: Codeexec) -> None:
        """Follow the runtime's stored limits (call once it started)."""
        self._limits = runtime.operations.limits
        await self._limits.adopt_file(self.path)

    @property
    def document(self) -> LimitsDocument:
        stored = self._limits.stored_document if self._limits is not None else None
        return stored if stored is not None else self.default

    async def replace(self, document: LimitsDocument, by: str) -> LimitsDocument:
        """Record new limits (ValueError, recording nothing, if they are inconsistent)."""
        if self._limits is None:
            raise RuntimeError("the runtime is not started")
        await self._limits.change(document, by)
        return document
