"""The execution saga: a process manager that holds a slot, stops sandboxes and compensates."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID, uuid5

from codeexec.domain.aggregate import Aggregate, Cause, IllegalTransition
from codeexec.domain.events import (
    DomainEvent,
    SagaCompleted,
    SagaStarted,
    SandboxStopRequested,
    SlotReleased,
)
from codeexec.domain.execution import Execution, sandbox_id_for
from codeexec.domain.model import RunSpec

SAGA_NAMESPACE = UUID("6f1c7c53-3c55-4d8e-9a51-7d1c0f1e2a10")


def saga_id_for(execution_id: UUID) -> UUID:
    return uuid5(SAGA_NAMESPACE, execution_id.hex)


def deadline_for(spec: RunSpec, scheduled_at: datetime, grace: timedelta) -> datetime:
    """Generous on purpose: compile and run walls plus grace for queueing and start-up."""
    walls = spec.compile_limits.wall_time_s + spec.limits.wall_time_s
    return scheduled_at + timedelta(seconds=walls) + grace


class ExecutionSaga(Aggregate):
    """Steps: hold a slot from scheduling; stop the sandbox on cancel or deadline;
    on any terminal outcome release the slot (compensation) and complete. Every field is
    plain data folded from its events, so a restarted orchestrator resumes exactly here."""

    created_by = (SagaStarted,)

    def __init__(self, id: UUID, execution_id: UUID, user_id: str) -> None:
        super().__init__(id, execution_id, user_id)
        self.sandbox_id = ""
        self.deadline: datetime | None = None
        self.stop_requested = False
        self.slot_released = False
        self.completed = False

    @classmethod
    def begin(cls, execution: Execution, cause: Cause, grace: timedelta) -> ExecutionSaga:
        assert execution.spec is not None
        saga = cls(saga_id_for(execution.id), execution.id, execution.user_id)
        saga._trigger(
            SagaStarted,
            cause,
            sandbox_id=sandbox_id_for(execution.id),
            deadline=deadline_for(execution.spec, cause.time, grace),
        )
        return saga

    def is_overdue(self, now: datetime) -> bool:
        return not self.completed and self.deadline is not None and now >= self.deadline

    def request_stop(self, cause: Cause, reason: Literal["cancel", "timeout"]) -> bool:
        """Ask the worker to kill the sandbox; once is enough (the command is durable)."""
        if self.completed or self.stop_requested:
            return False
        self._trigger(SandboxStopRequested, cause, sandbox_id=self.sandbox_id, reason=reason)
        return True

    def on_deadline(
        self, execution: Execution, cause: Cause, recorded: Iterable[DomainEvent] = ()
    ) -> None:
        """Time out a stuck execution: record the terminal outcome (with the output it
        recorded, `recorded` being its events), then stop the sandbox."""
        if not execution.is_terminal:
            execution.time_out(cause, recorded)
        self.request_stop(cause, "timeout")

    def compensate(self, cause: Cause, outcome: str) -> bool:
        """The execution ended: release the slot and complete. Idempotent."""
        if self.completed:
            return False
        if not self.slot_released:
            self._trigger(SlotReleased, cause)
        self._trigger(SagaCompleted, cause, outcome=outcome)
        return True

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, SagaStarted):
            if self.version != 0:
                raise IllegalTransition("saga already started")
            self.sandbox_id, self.deadline = event.sandbox_id, event.deadline
            return
        if self.completed:
            raise IllegalTransition(f"saga {self.id} already completed")
        if isinstance(event, SandboxStopRequested):
            self.stop_requested = True
        elif isinstance(event, SlotReleased):
            self.slot_released = True
        elif isinstance(event, SagaCompleted):
            self.completed = True
        else:
            raise IllegalTransition(f"{event.type_name} is not a saga event")
