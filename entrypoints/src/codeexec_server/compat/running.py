"""The one way a peer's request becomes an execution: the same spec rules, bounds, admission and
errors as our own submit route (routes_executions.py), so compat traffic gets our limits, rate
limit, storage quota and audit log."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, Sequence
from contextlib import AbstractContextManager, aclosing
from typing import Any, cast

from fastapi import Request
from pydantic import ValidationError

from codeexec.domain.events import DomainEvent, ExecutionRequested
from codeexec.domain.model import RunSpec
from codeexec.ports.read_model import ExecutionView
from codeexec.runtime import Codeexec
from codeexec_server.keystore import Principal
from codeexec_server.open_requests import OpenRequests, unless_gone
from codeexec_server.problems import ApiProblem, submission_problems
from codeexec_server.schemas import FieldError, LimitsIn, SubmissionIn
from codeexec_server.submissions import build_spec


async def json_body(request: Request) -> Any:
    """The body as JSON whatever its declared type: peers' clients send JSON as text/plain."""
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiProblem(400, f"the body is not valid JSON: {exc}") from None


def runtime_of(request: Request) -> Codeexec:
    runtime: Codeexec | None = request.app.state.runtime
    if runtime is None:
        raise RuntimeError("the runtime is not started")
    return runtime


def spec_of(
    request: Request,
    principal: Principal,
    *,
    language: str,
    version: str | None,
    files: Sequence[tuple[str, bytes]],
    stdin: bytes = b"",
    args: Sequence[str] = (),
    limits: LimitsIn | None = None,
) -> RunSpec:
    """Checked exactly as our own submissions are (admin maxima, file names, argv bounds);
    errors name our fields (`limits.wall_time_s`, `files.0.name`), for the caller to rename."""
    try:
        # Validated as a request body is, so errors name the item (`files.1.name`).
        body = SubmissionIn.model_validate(
            {
                "language": language,
                "version": version,
                "files": [
                    {"name": name, "content": base64.b64encode(data).decode(), "encoding": "base64"}
                    for name, data in files
                ],
                "stdin": base64.b64encode(stdin).decode(),
                "stdin_encoding": "base64",
                "args": list(args),
                "limits": limits.model_dump(exclude_none=True) if limits else None,
            }
        )
    except ValidationError as error:  # a file name or an argument our API would refuse
        found = [
            FieldError(field=".".join(str(p) for p in e["loc"]), message=e["msg"])
            for e in error.errors()
        ]
        raise ApiProblem(422, "; ".join(f"{e.field}: {e.message}" for e in found), found) from None
    runtime = runtime_of(request)
    spec, _ = build_spec(body, principal, runtime.language_list, request.app.state.limits.document)
    return spec


async def submit(request: Request, principal: Principal, spec: RunSpec) -> ExecutionView:
    open_requests: OpenRequests = request.app.state.open_requests
    with open_requests.accepting_one(), submission_problems():
        return await runtime_of(request).submit(principal.user_id, spec)


def waiter_slot(request: Request, principal: Principal) -> AbstractContextManager[None]:
    """Held while a request waits for its result; taken before submitting, so over the
    bound nothing is recorded."""
    open_requests: OpenRequests = request.app.state.open_requests
    return open_requests.waiters.hold(principal.user_id)


async def wait_for(request: Request, view: ExecutionView) -> ExecutionView:
    """The execution once ended, within the server's bound and only while the client is
    connected; else as it is then."""
    if view.terminal:
        return view
    bound = request.app.state.settings.max_wait_s
    waiting = runtime_of(request).wait(view.id, bound)
    return await unless_gone(request.receive, waiting) or view


def recorded(runtime: Codeexec, view: ExecutionView) -> aclosing[AsyncGenerator[DomainEvent]]:
    """The execution's events recorded so far, closed even when the reader stops early."""
    events = runtime.events(view.id, 0, follow=False)
    return aclosing(cast(AsyncGenerator[DomainEvent], events))


async def requested_spec(runtime: Codeexec, view: ExecutionView) -> RunSpec | None:
    """The spec as recorded in the execution's first event (read through the public API)."""
    async with recorded(runtime, view) as events:
        async for event in events:
            return event.spec if isinstance(event, ExecutionRequested) else None
    return None
