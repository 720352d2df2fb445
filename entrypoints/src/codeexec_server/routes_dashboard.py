"""Admin routes the operators' dashboard draws from: the queue over time, executions counted."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BeforeValidator

from codeexec_server.auth import Admin
from codeexec_server.problems import problem_responses
from codeexec_server.queue_history import QueueHistory
from codeexec_server.routes_executions import Runtime
from codeexec_server.schemas_dashboard import ExecutionCountsOut, QueueHistoryOut

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


def _iso_time(text: str) -> datetime:
    # Only ISO 8601: pydantic alone would also read `0.5` as seconds since 1970.
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time with a zone") from None


Since = Annotated[AwareDatetime, BeforeValidator(_iso_time)]


@router.get(
    "/queue/history",
    response_model=QueueHistoryOut,
    summary="Queue depth, running work and consumer lag over the last minutes",
    description="Samples this API process took (every `interval_s`, the last `window_s`), "
    "oldest first; `since` returns only later ones, for polling.",
    responses=problem_responses(401, 403, 422),
)
async def queue_history(
    admin: Admin,
    request: Request,
    runtime: Runtime,
    since: Annotated[
        Since | None, Query(description="only samples after this time (ISO 8601, with zone)")
    ] = None,
) -> QueueHistoryOut:
    history: QueueHistory = request.app.state.queue_history
    samples = [s for s in history.samples if since is None or s.time > since]
    config = runtime.operations.limits.config
    return QueueHistoryOut.of(history, samples, config.max_queue, config.max_running)


@router.get(
    "/execution-counts",
    response_model=ExecutionCountsOut,
    summary="Executions per status and per lifecycle state, every user's",
    responses=problem_responses(401, 403),
)
async def execution_counts(admin: Admin, runtime: Runtime) -> ExecutionCountsOut:
    by_status, by_state = await runtime.operations.execution_totals()
    return ExecutionCountsOut(
        total=sum(by_state.values()), by_status=dict(by_status), by_state=dict(by_state)
    )
