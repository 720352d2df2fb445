"""AdminLimits: the one aggregate holding the limits admins set, changed only by events."""

from __future__ import annotations

from uuid import UUID, uuid5

from codeexec.domain.aggregate import Aggregate, Cause
from codeexec.domain.envelope import DomainEvent
from codeexec.domain.limits import LimitsDocument
from codeexec.domain.operations_events import LimitsChanged

LIMITS_ID = uuid5(UUID("0b7c8f0e-6a3b-4c52-8a4e-2f4a5d7e9c11"), "codeexec admin limits")
"""Every process of a deployment finds the limits under this one id."""


class AdminLimits(Aggregate):
    created_by = (LimitsChanged,)

    def __init__(self, id: UUID, execution_id: UUID, user_id: str) -> None:
        super().__init__(id, execution_id, user_id)
        self.document: LimitsDocument | None = None
        self.changed_by = ""

    @classmethod
    def new(cls, admin: str) -> AdminLimits:
        return cls(LIMITS_ID, LIMITS_ID, admin)

    def change(self, document: LimitsDocument, by: str, cause: Cause) -> None:
        document.coordinator_config()  # raises ValueError before anything is recorded
        self._trigger(LimitsChanged, cause, limits=document, by=by)

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, LimitsChanged):
            self.document, self.changed_by = event.limits, event.by
