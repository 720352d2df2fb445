"""Routes for executions: submit (with wait and idempotency), read, list, cancel; languages."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from codeexec.ports.read_model import ExecutionQuery, ExecutionView
from codeexec.runtime import Codeexec, NotFound
from codeexec_server.auth import CurrentUser
from codeexec_server.keystore import Principal
from codeexec_server.limits import LimitsPolicy
from codeexec_server.open_requests import OpenRequests, unless_gone
from codeexec_server.problems import (
    ApiProblem,
    problem_responses,
    submission_problems,
)
from codeexec_server.schemas import (
    ExecutionOut,
    ExecutionPage,
    LanguageOut,
    StatusFilter,
    SubmissionIn,
)
from codeexec_server.submissions import build_spec

router = APIRouter(prefix="/api/v1", tags=["executions"])
BASE = "/api/v1/executions"


async def runtime_of(request: Request) -> Codeexec:
    runtime: Codeexec = request.app.state.runtime
    return runtime


Runtime = Annotated[Codeexec, Depends(runtime_of)]


async def owned(runtime: Codeexec, execution_id: UUID, principal: Principal) -> ExecutionView:
    """The execution if the principal may see it (from the store when the read model lags:
    a follower reconnecting to a restarted API must not be told it is missing)."""
    try:
        return await runtime.find(execution_id, None if principal.is_admin else principal.user_id)
    except NotFound:
        raise ApiProblem(404, f"no execution {execution_id}") from None


@router.post(
    "/executions",
    status_code=202,
    response_model=ExecutionOut,
    summary="Submit code to run",
    responses={
        200: {"model": ExecutionOut, "description": "Finished (with `wait=true`)"},
        202: {"description": "Accepted; follow `links.events` or poll `links.self`"},
        **problem_responses(400, 401, 403, 413, 422, 429, 503),
    },
)
async def submit(
    body: SubmissionIn,
    request: Request,
    response: Response,
    principal: CurrentUser,
    runtime: Runtime,
    wait: Annotated[bool, Query(description="block until the result (bounded)")] = False,
    timeout: Annotated[float, Query(gt=0, le=60, description="bound for `wait`, s")] = 30.0,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$"),
    ] = None,
) -> ExecutionOut:
    policy: LimitsPolicy = request.app.state.limits
    open_requests: OpenRequests = request.app.state.open_requests
    spec, priority = build_spec(body, principal, runtime.language_list, policy.document)
    with ExitStack() as held:
        if wait:  # a waiter's slot is taken first: over the bound nothing is recorded
            held.enter_context(open_requests.waiters.hold(principal.user_id, idempotency_key))
        with open_requests.accepting_one(), submission_problems():
            view = await runtime.submit(
                principal.user_id, spec, priority=priority, idempotency_key=idempotency_key
            )
        if wait and not view.terminal:
            bound = min(timeout, request.app.state.settings.max_wait_s)
            view = await unless_gone(request.receive, runtime.wait(view.id, bound)) or view
    if view.terminal and wait:
        response.status_code = 200
    response.headers["Location"] = f"{BASE}/{view.id}"
    return ExecutionOut.of(view)


@router.get(
    "/executions",
    response_model=ExecutionPage,
    summary="List your executions, newest first (admins: anyone's, with `user`)",
    responses=problem_responses(401, 403, 422),
)
async def list_executions(
    principal: CurrentUser,
    runtime: Runtime,
    status: Annotated[
        list[StatusFilter] | None, Query(description="status or state; repeatable")
    ] = None,
    language: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    user: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="admins only: list this user's executions, or `*` for everyone's",
        ),
    ] = None,
) -> ExecutionPage:
    owner: str | None = principal.user_id
    if user is not None:
        if not principal.is_admin:
            raise ApiProblem(403, "only admins may list other users' executions")
        owner = None if user == "*" else user
    page = await runtime.query(
        ExecutionQuery(
            user_id=owner,
            statuses=frozenset(status or ()),
            language=language,
            cursor=int(cursor) if cursor else None,
            limit=limit,
        )
    )
    return ExecutionPage(
        items=[ExecutionOut.of(v) for v in page.items],
        next_cursor=str(page.next_cursor) if page.next_cursor is not None else None,
    )


@router.get(
    "/executions/{execution_id}",
    response_model=ExecutionOut,
    summary="One execution: status and result (`wait=true`: once it has ended, bounded)",
    responses=problem_responses(401, 404, 422, 429),
)
async def get_execution(
    execution_id: UUID,
    request: Request,
    principal: CurrentUser,
    runtime: Runtime,
    wait: Annotated[
        bool,
        Query(
            description="block until the result (bounded): a client that saw the terminal "
            "event on the stream gets the finished view, even while the listing lags"
        ),
    ] = False,
    timeout: Annotated[float, Query(gt=0, le=60, description="bound for `wait`, s")] = 30.0,
) -> ExecutionOut:
    view = await owned(runtime, execution_id, principal)
    if wait and not view.terminal:
        open_requests: OpenRequests = request.app.state.open_requests
        with open_requests.waiters.hold(principal.user_id, None):
            bound = min(timeout, request.app.state.settings.max_wait_s)
            view = await unless_gone(request.receive, runtime.wait(view.id, bound)) or view
    return ExecutionOut.of(view)


@router.post(
    "/executions/{execution_id}/cancel",
    status_code=202,
    response_model=ExecutionOut,
    summary="Cancel: queued runs are dropped, running ones killed",
    responses={
        200: {"model": ExecutionOut, "description": "Already finished; nothing to cancel"},
        **problem_responses(401, 404, 422),
    },
)
async def cancel_execution(
    execution_id: UUID, principal: CurrentUser, runtime: Runtime, response: Response
) -> ExecutionOut:
    view = await owned(runtime, execution_id, principal)
    if view.terminal:
        response.status_code = 200
        return ExecutionOut.of(view)
    view = await runtime.cancel(execution_id, view.user_id)
    return ExecutionOut.of(view)


@router.get(
    "/languages",
    response_model=list[LanguageOut],
    summary="Languages this server can run",
    tags=["languages"],
    responses=problem_responses(401),
)
async def languages(principal: CurrentUser, runtime: Runtime) -> list[LanguageOut]:
    return [
        LanguageOut(
            name=lang.name,
            version=lang.version,
            aliases=list(lang.aliases),
            compiled=lang.compiled,
            extension=lang.extension,
        )
        for lang in await runtime.languages()
    ]
