"""Judge0's submission routes: create (one or a batch), read (one or a batch), list; the
tokens are our execution ids, visible only to their owner (and admins)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from codeexec.ports.read_model import ExecutionQuery, ExecutionView
from codeexec.runtime import NotFound
from codeexec_server.compat.judge0.catalog import Judge0Config
from codeexec_server.compat.judge0.request import Judge0Rejected, parse
from codeexec_server.compat.judge0.service import Judge0Service
from codeexec_server.compat.judge0.view import (
    AVAILABLE_FIELDS,
    DEFAULT_FIELDS,
    NOT_UTF8,
    NotUtf8,
)
from codeexec_server.compat.keys import compat_principal
from codeexec_server.compat.running import (
    json_body,
    runtime_of,
    submit,
    wait_for,
    waiter_slot,
)
from codeexec_server.keystore import Principal
from codeexec_server.problems import ApiProblem

router = APIRouter()
Caller = Annotated[Principal, Depends(compat_principal)]


def service(request: Request) -> Judge0Service:
    found: Judge0Service = request.app.state.judge0
    return found


def requested_fields(request: Request) -> tuple[str, ...]:
    """Judge0's `fields`: `*`, a comma-separated list, or its default set; 400 on others."""
    names = [n for n in request.query_params.get("fields", "").split(",") if n]
    invalid = [n for n in names if n != "*" and n not in AVAILABLE_FIELDS]
    if invalid:
        raise ApiProblem(400, f"invalid fields: [{', '.join(invalid)}]")
    if "*" in names:
        return tuple(AVAILABLE_FIELDS)
    return tuple(dict.fromkeys(names)) or DEFAULT_FIELDS


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name) == "true"  # Judge0 takes exactly "true"


async def visible(request: Request, token: str, caller: Principal) -> ExecutionView | None:
    try:
        execution_id = UUID(token)
    except ValueError:
        return None
    owner = None if caller.is_admin else caller.user_id
    try:
        return await runtime_of(request).find(execution_id, owner)
    except NotFound:
        return None


@router.post("/submissions", status_code=201)
async def create(request: Request, caller: Caller) -> Any:
    fields = requested_fields(request)
    base64_encoded, wait = flag(request, "base64_encoded"), flag(request, "wait")
    s = parse(await json_body(request))
    j0, runtime = service(request), runtime_of(request)
    prepared = await j0.prepare(request, caller, s, base64_encoded)
    with waiter_slot(request, caller) if wait else nullcontext():
        view = await submit(request, caller, prepared.spec)
        j0.record(runtime, view, prepared.echo)
        if not wait:
            return {"token": str(view.id)}
        view = await wait_for(request, view)
    try:
        return await j0.shown(runtime, view, fields, base64_encoded, prepared.spec)
    except NotUtf8:
        return JSONResponse({"error": NOT_UTF8, "token": str(view.id)}, 201)


@router.post("/submissions/batch")
async def create_batch(request: Request, caller: Caller) -> JSONResponse:
    body = await json_body(request)
    items = body.get("submissions") if isinstance(body, dict) else None
    limit = Judge0Config.of(request.app.state.limits.document).max_submission_batch_size
    count = len(items) if isinstance(items, list) else 0
    if count > limit:
        raise ApiProblem(
            400, f"number of submissions in a batch should be less than or equal to {limit}"
        )
    if count == 0 or not isinstance(items, list):
        raise ApiProblem(400, "there should be at least one submission in a batch")
    j0, runtime = service(request), runtime_of(request)
    base64_encoded = flag(request, "base64_encoded")
    answers: list[Any] = []
    for item in items:
        try:
            prepared = await j0.prepare(request, caller, parse(item), base64_encoded)
            view = await submit(request, caller, prepared.spec)
        except Judge0Rejected as rejected:
            answers.append(rejected.errors)
            continue
        except ApiProblem as problem:  # refused by admission or over a bound: this one only
            answers.append({"error": problem.detail})
            continue
        j0.record(runtime, view, prepared.echo)
        answers.append({"token": str(view.id)})
    accepted = any("token" in a for a in answers)
    return JSONResponse(answers, 201 if accepted else 422)


@router.get("/submissions/batch")
async def show_batch(request: Request, caller: Caller) -> dict[str, Any]:
    fields = requested_fields(request)
    raw = request.headers.get("tokens") or request.query_params.get("tokens", "")
    tokens = raw.strip().split(",") if raw.strip() else []
    limit = Judge0Config.of(request.app.state.limits.document).max_submission_batch_size
    if len(tokens) > limit:
        raise ApiProblem(
            400, f"number of submissions in a batch should be less than or equal to {limit}"
        )
    if not tokens:
        raise ApiProblem(400, "there should be at least one submission in a batch")
    j0, runtime = service(request), runtime_of(request)
    base64_encoded = flag(request, "base64_encoded")
    found: list[Any] = []
    for token in tokens:
        view = await visible(request, token, caller)
        found.append(
            None if view is None else await j0.shown(runtime, view, fields, base64_encoded)
        )
    return {"submissions": found}


@router.get("/submissions/{token}")
async def show(request: Request, token: str, caller: Caller) -> Any:
    fields = requested_fields(request)
    view = await visible(request, token, caller)
    if view is None:
        raise ApiProblem(404, f"submission {token} not found")
    return await service(request).shown(
        runtime_of(request), view, fields, flag(request, "base64_encoded")
    )


@router.get("/submissions")
async def index(request: Request, caller: Caller) -> dict[str, Any]:
    """The caller's submissions, newest first (an admin's: everyone's), Judge0's paging."""
    fields = requested_fields(request)
    try:
        page = int(request.query_params.get("page", "1"))
        per_page = int(request.query_params.get("per_page", "20"))
    except ValueError:
        raise ApiProblem(400, "page and per_page must be integers") from None
    if page <= 0:
        raise ApiProblem(400, f"invalid page: {page}")
    if not 0 <= per_page <= 100:
        raise ApiProblem(400, f"invalid per_page: {per_page} (at most 100 here)")
    runtime = runtime_of(request)
    owner = None if caller.is_admin else caller.user_id
    seen: list[ExecutionView] = []
    cursor: int | None = None
    while True:  # pages of our cursor listing until past the page asked for
        listed = await runtime.query(ExecutionQuery(user_id=owner, cursor=cursor, limit=100))
        seen.extend(listed.items)
        cursor = listed.next_cursor
        if cursor is None or len(seen) > page * per_page:
            break
    items = seen[(page - 1) * per_page : page * per_page]
    j0, base64_encoded = service(request), flag(request, "base64_encoded")
    shown = [await j0.shown(runtime, v, fields, base64_encoded) for v in items]
    known = len(seen) if cursor is None else None
    pages = -(-known // per_page) if known is not None and per_page else None
    return {
        "submissions": shown,
        "meta": {
            "current_page": page,
            "next_page": page + 1 if len(seen) > page * per_page else None,
            "prev_page": page - 1 if page > 1 else None,
            "total_pages": pages,
            "total_count": known,
        },
    }


@router.delete("/submissions/{token}")
async def delete(token: str, caller: Caller) -> JSONResponse:
    # The audit log keeps every execution: deleting is off, as Judge0's own default is.
    return JSONResponse({"error": "delete not allowed"}, 400)
