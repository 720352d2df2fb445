"""Admin routes for dead letters: list and filter, inspect, retry now, discard, archive."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Query

from codeexec.domain.dead_letter import DeadLetter
from codeexec.runtime import Codeexec
from codeexec_server.auth import Admin
from codeexec_server.problems import ApiProblem, as_problems, problem_responses
from codeexec_server.routes_executions import Runtime
from codeexec_server.schemas_operations import (
    DeadLetterOut,
    DeadLetterPage,
    DeadLetterStateFilter,
    DeadLetterSummary,
    DiscardIn,
    links_to,
)

router = APIRouter(prefix="/api/v1/admin", tags=["dead letters"])
TRANSITION_PROBLEMS = problem_responses(401, 403, 404, 409, 422)
ACTIONS = ("retry_dead_letter", "discard_dead_letter", "archive_dead_letter")


async def _letter(runtime: Codeexec, letter_id: UUID) -> DeadLetter:
    try:
        return await runtime.operations.dead_letter(letter_id)
    except LookupError:  # also for another kind of aggregate's id
        raise ApiProblem(404, f"no dead letter {letter_id}") from None


def _wanted(
    letter: DeadLetter, states: set[str], group: str | None, event_type: str | None
) -> bool:
    parked = letter.parked
    if parked is None:
        return False
    if states and letter.state.value not in states and not ("open" in states and letter.is_open):
        return False
    if group is not None and parked.group != group:
        return False
    return event_type is None or parked.event_type == event_type


@router.get(
    "/dead-letters",
    response_model=DeadLetterPage,
    summary="Dead letters, newest first",
    responses={
        200: links_to("letter_id", "/items/0/id", "get_dead_letter", *ACTIONS),
        **problem_responses(401, 403, 422),
    },
)
async def list_dead_letters(
    admin: Admin,
    runtime: Runtime,
    state: Annotated[
        list[DeadLetterStateFilter] | None,
        Query(description="repeatable; `open` = parked, retrying or exhausted"),
    ] = None,
    group: Annotated[str | None, Query(max_length=200, description="consumer group")] = None,
    event_type: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> DeadLetterPage:
    # Dead letters are only ever appended, so an index is a stable cursor.
    letters = await runtime.operations.dead_letters()
    end = min(int(cursor), len(letters)) if cursor is not None else len(letters)
    states: set[str] = set(state or ())
    items: list[DeadLetterSummary] = []
    index = end
    while index > 0 and len(items) < limit:
        index -= 1
        if _wanted(letters[index], states, group, event_type):
            items.append(DeadLetterSummary.of(letters[index]))
    more = index > 0 and any(_wanted(x, states, group, event_type) for x in letters[:index])
    return DeadLetterPage(items=items, next_cursor=str(index) if more else None)


@router.get(
    "/dead-letters/{letter_id}",
    response_model=DeadLetterOut,
    summary="One dead letter in full: payload, headers, errors, retries, next due time",
    operation_id="get_dead_letter",
    responses={
        200: links_to("letter_id", "/id", *ACTIONS),
        **problem_responses(401, 403, 404, 422),
    },
)
async def get_dead_letter(letter_id: UUID, admin: Admin, runtime: Runtime) -> DeadLetterOut:
    return DeadLetterOut.of(await _letter(runtime, letter_id))


@router.post(
    "/dead-letters/{letter_id}/retry",
    operation_id="retry_dead_letter",
    status_code=202,
    response_model=DeadLetterOut,
    summary="Retry now: republish to the original topic, for the group that failed on it",
    description="Allowed when parked or exhausted. The letter is `retrying` until the group "
    "processes it (then `resolved`) or fails again (then parked or exhausted).",
    responses=TRANSITION_PROBLEMS,
)
async def retry_dead_letter(letter_id: UUID, admin: Admin, runtime: Runtime) -> DeadLetterOut:
    await _letter(runtime, letter_id)
    with as_problems(f"dead letter {letter_id}"):
        letter = await runtime.operations.retry_dead_letter(letter_id, admin.user_id)
    return DeadLetterOut.of(letter)


@router.post(
    "/dead-letters/{letter_id}/discard",
    operation_id="discard_dead_letter",
    response_model=DeadLetterOut,
    summary="Discard an open dead letter (never retried again), with an optional reason",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
)
async def discard_dead_letter(
    letter_id: UUID,
    admin: Admin,
    runtime: Runtime,
    body: Annotated[DiscardIn | None, Body()] = None,
) -> DeadLetterOut:
    await _letter(runtime, letter_id)
    reason = body.reason if body is not None else ""
    with as_problems(f"dead letter {letter_id}"):
        letter = await runtime.operations.discard_dead_letter(letter_id, admin.user_id, reason)
    return DeadLetterOut.of(letter)


@router.post(
    "/dead-letters/{letter_id}/archive",
    operation_id="archive_dead_letter",
    response_model=DeadLetterOut,
    summary="Archive an open dead letter (kept for the record, never retried)",
    responses=TRANSITION_PROBLEMS,
)
async def archive_dead_letter(letter_id: UUID, admin: Admin, runtime: Runtime) -> DeadLetterOut:
    await _letter(runtime, letter_id)
    with as_problems(f"dead letter {letter_id}"):
        letter = await runtime.operations.archive_dead_letter(letter_id, admin.user_id)
    return DeadLetterOut.of(letter)
