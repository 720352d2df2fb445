"""Admin routes (queue status, limits) and the health probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from codeexec.runtime import Codeexec
from codeexec.service.store_thread import StoreBusy
from codeexec_server.auth import Admin
from codeexec_server.health_server import probe
from codeexec_server.limits import LimitsDocument, LimitsPolicy
from codeexec_server.problems import ApiProblem, problem_responses
from codeexec_server.routes_executions import Runtime
from codeexec_server.schemas import DeadLetterCheck, HealthChecks, HealthOut, QueueStatusOut

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
health = APIRouter(prefix="/health", tags=["health"])


@router.get(
    "/queue",
    response_model=QueueStatusOut,
    summary="Queue depth, running work and consumer backlog",
    responses=problem_responses(401, 403),
)
async def queue(admin: Admin, runtime: Runtime) -> QueueStatusOut:
    status = await runtime.queue_status()
    return QueueStatusOut(
        queued=status.queued,
        running=status.running,
        max_queue=status.max_queue,
        max_running=status.max_running,
        queued_by_user=dict(status.queued_by_user),
        running_by_user=dict(status.running_by_user),
        queued_by_priority={str(k): v for k, v in status.queued_by_priority.items()},
        backlog=await runtime.backlog(),
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
        # Recorded as an event: every coordinator and API process applies it.
        return await policy.replace(document, admin.user_id)
    except ValueError as error:
        raise ApiProblem(422, str(error)) from None


async def checks_of(runtime: Codeexec | None) -> HealthChecks:
    """Raises StoreBusy when the store does not answer in time."""
    if runtime is None or not runtime.started:
        return HealthChecks(roles={}, dead_letters=None)
    (count, level), oldest = await runtime.operations.dead_letter_backlog()
    config = runtime.settings.dead_letters
    return HealthChecks(
        roles={name: str(state) for name, state in runtime.health().items()},
        dead_letters=DeadLetterCheck(
            open=count,
            level=level,
            warning_at=config.warning_backlog,
            critical_at=config.critical_backlog,
            oldest_open_at=oldest,
        ),
    )


@health.get("/live", response_model=HealthOut, summary="The process answers")
async def live() -> HealthOut:
    # Never touches the store or a role: it answers while the store is locked or slow.
    return HealthOut(status="ok")


@health.get(
    "/ready",
    response_model=HealthOut,
    summary="The runtime started and every role task is alive (checks in the body)",
    description="200 `ok`, or 200 `degraded` when the dead-letter backlog is critical: "
    "that needs an operator, not a restart or less traffic, so it never fails readiness. "
    "503 `unavailable` when the runtime is not started, a role task stopped or the event "
    "store does not answer in time (busy or locked).",
    responses={503: {"model": HealthOut, "description": "Not ready"}},
)
async def ready(request: Request) -> HealthOut | JSONResponse:
    runtime: Codeexec | None = getattr(request.app.state, "runtime", None)
    try:
        checks = await checks_of(runtime)
    except StoreBusy as busy:
        body = HealthOut(status="unavailable", detail=str(busy))
        return JSONResponse(body.model_dump(mode="json"), 503, {"Retry-After": busy.retry_after})
    if runtime is None or not runtime.healthy:
        down = [f"{role} {state}" for role, state in checks.roles.items() if state != "running"]
        detail = "role tasks not running: " + ", ".join(down) if down else "not started"
        body = HealthOut(status="unavailable", detail=detail, checks=checks)
        return JSONResponse(body.model_dump(mode="json"), 503)
    # Every listing and view of this API comes from the read model: a real read of it.
    unanswered = await probe(runtime.queries.ping, runtime.settings.store_busy_timeout_s)
    if unanswered is not None:
        detail = f"the read model does not answer: {unanswered}"
        body = HealthOut(status="unavailable", detail=detail, checks=checks)
        return JSONResponse(body.model_dump(mode="json"), 503)
    dead = checks.dead_letters
    if dead is not None and dead.level == "critical":
        detail = f"dead-letter backlog critical: {dead.open} open"
        return HealthOut(status="degraded", detail=detail, checks=checks)
    return HealthOut(status="ok", checks=checks)
