"""Admin routes for replay sessions: start, list, follow progress, pause, resume, cancel."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from codeexec.domain.replay import ReplaySession
from codeexec.domain.routing import DEAD_LETTERS
from codeexec.runtime import Codeexec
from codeexec.service.replays import InvalidReplay
from codeexec_server.auth import Admin
from codeexec_server.problems import ApiProblem, as_problems, field_error, problem_responses
from codeexec_server.routes_executions import Runtime
from codeexec_server.schemas_operations import (
    REPLAYS,
    ReplayIn,
    ReplayOut,
    ReplayStateName,
    links_to,
)

router = APIRouter(prefix="/api/v1/admin", tags=["replays"])
CHANGES = ("pause_replay", "resume_replay", "cancel_replay")


async def _session(runtime: Codeexec, session_id: UUID) -> ReplaySession:
    try:
        return await runtime.operations.replay(session_id)
    except LookupError:  # also for another kind of aggregate's id
        raise ApiProblem(404, f"no replay session {session_id}") from None


@router.post(
    "/replays",
    status_code=201,
    response_model=ReplayOut,
    summary="Start a replay session: re-emit the selected stored events to a topic",
    description="Replayed messages carry a `replay-session` header, so no consumer takes "
    "them as new work. The selection ends at `filters.until_position` (default: the end "
    "of the store now), so a session is finite and the same after a restart.",
    responses={
        201: links_to("session_id", "/id", "get_replay", *CHANGES),
        **problem_responses(400, 401, 403, 413, 422),
    },
)
async def create_replay(
    body: ReplayIn, admin: Admin, runtime: Runtime, response: Response
) -> ReplayOut:
    if body.target_topic == DEAD_LETTERS:
        # The DLQ manager would take replayed events for parked messages and retry them.
        raise field_error("target_topic", "the dead-letter topic only takes parked messages")
    end = await runtime.operations.log_end()
    if body.filters.until_position is not None and body.filters.until_position > end:
        raise field_error("filters.until_position", f"beyond the end of the store ({end})")
    try:
        session = await runtime.operations.create_replay(
            admin.user_id,
            body.filters.domain(),
            body.target_topic,
            batch_size=body.batch_size,
            rate_per_s=body.rate_per_s,
            dry_run=body.dry_run,
        )
    except InvalidReplay as error:
        message = str(error).removeprefix(f"{error.field}: ")
        raise field_error(error.field, message) from None
    response.headers["Location"] = f"{REPLAYS}/{session.id}"
    return ReplayOut.of(session)


@router.get(
    "/replays",
    response_model=list[ReplayOut],
    summary="Replay sessions, newest first",
    responses=problem_responses(401, 403, 422),
)
async def list_replays(
    admin: Admin,
    runtime: Runtime,
    state: Annotated[list[ReplayStateName] | None, Query(description="repeatable")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ReplayOut]:
    wanted = set(state or ())
    found = [
        ReplayOut.of(s)
        for s in reversed(await runtime.operations.replays())
        if not wanted or s.state.value in wanted
    ]
    return found[:limit]


@router.get(
    "/replays/{session_id}",
    response_model=ReplayOut,
    summary="One replay session: state and progress",
    operation_id="get_replay",
    responses={
        200: links_to("session_id", "/id", *CHANGES),
        **problem_responses(401, 403, 404, 422),
    },
)
async def get_replay(session_id: UUID, admin: Admin, runtime: Runtime) -> ReplayOut:
    return ReplayOut.of(await _session(runtime, session_id))


async def _change(runtime: Codeexec, session_id: UUID, action: str, by: str) -> ReplayOut:
    await _session(runtime, session_id)
    with as_problems(f"replay session {session_id}"):
        session = await runtime.operations.change_replay(session_id, action, by)
    return ReplayOut.of(session)


TRANSITION_PROBLEMS = problem_responses(401, 403, 404, 409, 422)


@router.post(
    "/replays/{session_id}/pause",
    response_model=ReplayOut,
    operation_id="pause_replay",
    summary="Pause a running session (after the batch in flight)",
    responses=TRANSITION_PROBLEMS,
)
async def pause_replay(session_id: UUID, admin: Admin, runtime: Runtime) -> ReplayOut:
    return await _change(runtime, session_id, "pause", admin.user_id)


@router.post(
    "/replays/{session_id}/resume",
    response_model=ReplayOut,
    operation_id="resume_replay",
    summary="Resume a paused session where it stopped",
    responses=TRANSITION_PROBLEMS,
)
async def resume_replay(session_id: UUID, admin: Admin, runtime: Runtime) -> ReplayOut:
    return await _change(runtime, session_id, "resume", admin.user_id)


@router.post(
    "/replays/{session_id}/cancel",
    response_model=ReplayOut,
    operation_id="cancel_replay",
    summary="Cancel a running or paused session (events already sent stay sent)",
    responses=TRANSITION_PROBLEMS,
)
async def cancel_replay(session_id: UUID, admin: Admin, runtime: Runtime) -> ReplayOut:
    return await _change(runtime, session_id, "cancel", admin.user_id)
