"""Admin routes (queue status, limits) and the health probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from codeexec.runtime import Codeexec
from codeexec_server.auth import Admin
from codeexec_server.limits import LimitsDocument, LimitsPolicy
from codeexec_server.problems import ApiProblem, problem_responses
from codeexec_server.routes_executions import Runtime
from codeexec_server.schemas import HealthOut, QueueStatusOut

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
health = APIRouter(prefix="/health", tags=["health"])


@router.get(
    "/queue",
    response_model=QueueStatusOut,
    summary="Queue depth, running work and consumer backlog",
    responses=problem_responses(401, 403),
)
async def queue(admin: Admin, runtime: Runtime) -> QueueStatusOut:
    status = runtime.queue_status()
    return QueueStatusOut(
        queued=status.queued,
        running=status.running,
        max_queue=status.max_queue,
        max_running=status.max_running,
        queued_by_user=dict(status.queued_by_user),
        running_by_user=dict(status.running_by_user),
        queued_by_priority={str(k): v for k, v in status.queued_by_priority.items()},
        backlog=runtime.backlog(),
    )


@router.get(
    "/limits",
    response_model=LimitsDocument,
    summary="Global and per-user limits, and per-run resource maxima",
    responses=problem_responses(401, 403),
)
async def get_limits(admin: Admin, request: Request) -> LimitsDocument:
    policy: LimitsPolicy = request.app.state.limits
    return policy.document


@router.put(
    "/limits",
    response_model=LimitsDocument,
    summary="Replace the limits (applied at once, kept across restarts)",
    responses=problem_responses(400, 401, 403, 413, 422),
)
async def put_limits(
    document: LimitsDocument, admin: Admin, request: Request, runtime: Runtime
) -> LimitsDocument:
    policy: LimitsPolicy = request.app.state.limits
    try:
        policy.replace(document, runtime)
    except ValueError as error:
        raise ApiProblem(422, str(error)) from None
    return policy.document


def runtime_alive(runtime: Codeexec | None) -> tuple[bool, str]:
    if runtime is None or not runtime.started:
        return False, "the runtime is not started"
    # Role tasks are private to the runtime; a public health method would be better.
    tasks = getattr(runtime, "_tasks", [])
    dead = [t.get_name() for t in tasks if t.done()]
    if dead:
        return False, "role tasks stopped: " + ", ".join(dead)
    return True, ""


@health.get("/live", response_model=HealthOut, summary="The process answers")
async def live() -> HealthOut:
    return HealthOut(status="ok")


@health.get(
    "/ready",
    response_model=HealthOut,
    summary="The runtime started and every role task is alive",
    responses={503: {"model": HealthOut, "description": "Not ready"}},
)
async def ready(request: Request) -> HealthOut | JSONResponse:
    ok, detail = runtime_alive(getattr(request.app.state, "runtime", None))
    if ok:
        return HealthOut(status="ok")
    return JSONResponse(HealthOut(status="unavailable", detail=detail).model_dump(), 503)
