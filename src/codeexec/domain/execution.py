"""The Execution aggregate: one submission's lifecycle, from request to one terminal outcome."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from uuid import UUID

from codeexec.domain.aggregate import Aggregate, Cause, IllegalTransition
from codeexec.domain.events import (
    DomainEvent,
    ExecutionCancelled,
    ExecutionCancelRequested,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionOutput,
    ExecutionQueued,
    ExecutionRejected,
    ExecutionRequested,
    ExecutionScheduled,
    ExecutionStarted,
    ExecutionTimedOut,
    RejectionReason,
)
from codeexec.domain.model import RunResult, RunSpec, SandboxStatus, Stream, request_digest

OUTPUT_EVENT_MAX_BYTES = 64 * 1024
"""Output is recorded in events of at most this many bytes, so every event stays small for
every reader: a bus message bound (Kafka's default is 1 MB), an event stream's memory."""


class State(StrEnum):
    REQUESTED = "requested"
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


TERMINAL_STATES = frozenset(
    {State.COMPLETED, State.FAILED, State.TIMED_OUT, State.CANCELLED, State.REJECTED}
)

_NEXT: dict[type[DomainEvent], tuple[frozenset[State], State | None]] = {
    ExecutionQueued: (frozenset({State.REQUESTED}), State.QUEUED),
    ExecutionRejected: (frozenset({State.REQUESTED}), State.REJECTED),
    ExecutionScheduled: (frozenset({State.QUEUED}), State.SCHEDULED),
    ExecutionStarted: (frozenset({State.SCHEDULED}), State.RUNNING),
    ExecutionOutput: (frozenset({State.RUNNING}), None),
    ExecutionCompleted: (frozenset({State.RUNNING}), State.COMPLETED),
    ExecutionFailed: (frozenset({State.SCHEDULED, State.RUNNING}), State.FAILED),
    ExecutionTimedOut: (frozenset({State.SCHEDULED, State.RUNNING}), State.TIMED_OUT),
    ExecutionCancelled: (
        frozenset({State.REQUESTED, State.QUEUED, State.SCHEDULED, State.RUNNING}),
        State.CANCELLED,
    ),
    ExecutionCancelRequested: (
        frozenset({State.REQUESTED, State.QUEUED, State.SCHEDULED, State.RUNNING}),
        None,
    ),
}


def state_after(event: DomainEvent) -> State | None:
    """The state an execution event leads to (None: the state does not change)."""
    entry = _NEXT.get(type(event))
    return entry[1] if entry is not None else None


def status_of(state: State, result: RunResult | None) -> str:
    """What users see: the lifecycle state in flight, then the sandbox's terminal status,
    or the status a platform-made ending stands for."""
    if state is State.COMPLETED and result is not None:
        return result.status.value
    return {
        State.FAILED: SandboxStatus.INTERNAL_ERROR.value,
        State.TIMED_OUT: SandboxStatus.TIME_LIMIT_EXCEEDED.value,
        State.CANCELLED: SandboxStatus.CANCELLED.value,
    }.get(state, state.value)


def sandbox_id_for(execution_id: UUID) -> str:
    """Deterministic, so starting the same execution twice is detectable by the sandbox."""
    return f"cx-{execution_id.hex}"


class Execution(Aggregate):
    """Illegal transitions raise IllegalTransition; exactly one terminal outcome is possible."""

    created_by = (ExecutionRequested,)

    def __init__(self, id: UUID, execution_id: UUID, user_id: str) -> None:
        super().__init__(id, execution_id, user_id)
        self.state = State.REQUESTED
        self.spec: RunSpec | None = None
        self.priority = 0
        self.idempotency_key: str | None = None
        self.request_digest = ""
        self.cancel_requested = False
        self.result: RunResult | None = None
        self.output_seq = 0
        self.correlation_id = execution_id
        self.worker_id: str | None = None

    @classmethod
    def request(
        cls,
        execution_id: UUID,
        user_id: str,
        spec: RunSpec,
        cause: Cause,
        priority: int = 0,
        idempotency_key: str | None = None,
        digest: str | None = None,
    ) -> Execution:
        """`digest` is `request_digest(spec, priority)`, passed when the caller computed it."""
        execution = cls(execution_id, execution_id, user_id)
        execution._trigger(
            ExecutionRequested,
            cause,
            spec=spec,
            priority=priority,
            idempotency_key=idempotency_key,
            request_digest=digest or request_digest(spec, priority),
        )
        return execution

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def queue(self, cause: Cause, queue_depth: int) -> None:
        self._trigger(ExecutionQueued, cause, priority=self.priority, queue_depth=queue_depth)

    def reject(self, cause: Cause, reason: RejectionReason, message: str) -> None:
        self._trigger(ExecutionRejected, cause, reason=reason, message=message)

    def schedule(self, cause: Cause) -> None:
        self._trigger(ExecutionScheduled, cause, sandbox_id=sandbox_id_for(self.id))

    def start(self, cause: Cause, worker_id: str) -> None:
        self._trigger(
            ExecutionStarted, cause, sandbox_id=sandbox_id_for(self.id), worker_id=worker_id
        )

    def record_output(self, cause: Cause, stream: Stream, data: bytes, stage: str) -> None:
        for start in range(0, max(len(data), 1), OUTPUT_EVENT_MAX_BYTES):
            piece = data[start : start + OUTPUT_EVENT_MAX_BYTES]
            self._trigger(ExecutionOutput, cause, stream=stream, data=piece, stage=stage)

    def request_cancel(self, cause: Cause, requested_by: str) -> bool:
        """Returns False when there is nothing left to cancel (already terminal or asked)."""
        if self.is_terminal or self.cancel_requested:
            return False
        self._trigger(ExecutionCancelRequested, cause, requested_by=requested_by)
        return True

    def finish(self, cause: Cause, result: RunResult) -> None:
        """Record the sandbox's result as the one terminal outcome."""
        if result.status is SandboxStatus.CANCELLED:
            self._trigger(ExecutionCancelled, cause, stage="running", result=result)
        elif result.status is SandboxStatus.INTERNAL_ERROR:
            self._trigger(ExecutionFailed, cause, reason=result.message, result=result)
        else:
            self._trigger(ExecutionCompleted, cause, result=result)

    def fail(self, cause: Cause, reason: str) -> None:
        self._trigger(ExecutionFailed, cause, reason=reason)

    def lose(self, cause: Cause, reason: str, recorded: Iterable[DomainEvent]) -> None:
        """The run ended and nobody can report its result (its worker died with it): fail,
        keeping the output it had recorded."""
        result = self.partial_result(recorded, SandboxStatus.INTERNAL_ERROR, reason)
        self._trigger(ExecutionFailed, cause, reason=reason, result=result)

    def time_out(self, cause: Cause, recorded: Iterable[DomainEvent] = ()) -> None:
        """No result before the deadline; the output recorded so far is kept."""
        result = self.partial_result(
            recorded, SandboxStatus.TIME_LIMIT_EXCEEDED, "no result before the deadline"
        )
        has_output = result.stdout or result.stderr or result.compile_output is not None
        self._trigger(
            ExecutionTimedOut, cause, deadline=cause.time, result=result if has_output else None
        )

    def partial_result(
        self, recorded: Iterable[DomainEvent], status: SandboxStatus, message: str
    ) -> RunResult:
        """The output events of this execution as a result: bytes-exact, each stream cut at
        its output limit (and then flagged truncated), compile output apart."""
        assert self.spec is not None
        kept: dict[Stream, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        truncated: dict[Stream, bool] = {"stdout": False, "stderr": False}
        compiled: bytearray | None = None
        compile_seen: dict[Stream, int] = {"stdout": 0, "stderr": 0}
        for event in recorded:
            if not isinstance(event, ExecutionOutput) or event.execution_id != self.id:
                continue
            if event.stage == "compile":
                room = self.spec.compile_limits.output_bytes - compile_seen[event.stream]
                compile_seen[event.stream] += len(event.data)
                compiled = (compiled or bytearray()) + event.data[: max(room, 0)]
                continue
            buffer = kept[event.stream]
            room = self.spec.limits.output_bytes - len(buffer)
            if len(event.data) > room:
                truncated[event.stream] = True
            buffer += event.data[: max(room, 0)]
        return RunResult(
            status=status,
            stdout=bytes(kept["stdout"]),
            stderr=bytes(kept["stderr"]),
            stdout_truncated=truncated["stdout"],
            stderr_truncated=truncated["stderr"],
            compile_output=None if compiled is None else bytes(compiled),
            message=message,
        )

    def cancel(self, cause: Cause) -> None:
        if self.is_terminal:
            raise IllegalTransition(f"cannot cancel {self.id}: already {self.state}")
        stage = self.state.value
        self._trigger(ExecutionCancelled, cause, stage=stage)

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, ExecutionRequested):
            if self.version != 0:
                raise IllegalTransition("execution already requested")
            self.spec, self.priority = event.spec, event.priority
            self.idempotency_key = event.idempotency_key
            self.request_digest = event.request_digest
            self.correlation_id = event.correlation_id
            return
        allowed, target = _NEXT[type(event)]
        if self.state not in allowed:
            raise IllegalTransition(
                f"{event.type_name} not allowed in state {self.state} of {self.id}"
            )
        if isinstance(event, ExecutionCancelRequested):
            self.cancel_requested = True
        elif isinstance(event, ExecutionStarted):
            self.worker_id = event.worker_id
        elif isinstance(event, ExecutionOutput):
            self.output_seq += 1
        elif isinstance(event, ExecutionCompleted | ExecutionFailed | ExecutionCancelled):
            self.result = event.result
        if target is not None:
            self.state = target
