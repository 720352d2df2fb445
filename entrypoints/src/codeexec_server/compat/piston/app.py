"""The Piston sub-application mounted at /piston: `GET /api/v2/runtimes`, `POST /api/v2/execute`,
errors as `{"message"}`. The body is read as JSON whatever its content type: the npm
piston-client sends its JSON as text/plain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import State

from codeexec_server.compat.keys import compat_principal
from codeexec_server.compat.peer_app import peer_app
from codeexec_server.compat.piston.request import PistonRejected, parse
from codeexec_server.compat.piston.result import piston_result
from codeexec_server.compat.piston.runtimes import choose, runtimes
from codeexec_server.compat.running import (
    json_body,
    runtime_of,
    spec_of,
    submit,
    wait_for,
    waiter_slot,
)
from codeexec_server.keystore import Principal
from codeexec_server.problems import ApiProblem

Caller = Annotated[Principal, Depends(compat_principal)]
router = APIRouter(prefix="/api/v2")


def message(status: int, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": text}, status, headers=headers)


def build(state: State) -> FastAPI:
    api = peer_app("Piston v2 API (codeexec)", state, message)

    @api.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return message(400 if exc.status == 422 else exc.status, exc.detail, exc.headers)

    @api.exception_handler(PistonRejected)
    async def _rejected(request: Request, exc: PistonRejected) -> JSONResponse:
        return message(400, str(exc))

    api.include_router(router)
    return api


@router.get("/runtimes")
async def list_runtimes(request: Request, caller: Caller) -> list[dict[str, Any]]:
    return [rt.listed() for rt in runtimes(runtime_of(request).language_list)]


@router.post("/execute")
async def execute(request: Request, caller: Caller) -> Any:
    runtime = runtime_of(request)
    maxima = request.app.state.limits.document.max_resource_limits
    inputs = parse(await json_body(request), maxima)
    chosen = choose(runtime.language_list, inputs.language, inputs.version)
    if chosen is None:
        raise PistonRejected(f"{inputs.language}-{inputs.version or '*'} runtime is unknown")
    ours = chosen.ours
    # Piston names unnamed files `file{i}.code`; here they keep the language's extension,
    # which the compilers need, and Java's entry is Main.java, as its class must be.
    extension = ours.extension if ours.extension.startswith(".") else f".{ours.extension}"
    files = [
        (name or ("Main.java" if (i, ours.name) == (0, "java") else f"file{i}{extension}"), data)
        for i, (name, data) in enumerate(inputs.files)
    ]
    spec = spec_of(
        request,
        caller,
        language=ours.name,
        version=ours.version,
        files=files,
        stdin=inputs.stdin,
        args=inputs.args,
        limits=inputs.run_limits,
    ).model_copy(update={"compile_limits": inputs.compile_limits})
    with waiter_slot(request, caller):
        view = await submit(request, caller, spec)
        view = await wait_for(request, view)
    if not view.terminal:
        return message(
            504,
            f"the run did not end within {request.app.state.settings.max_wait_s:g} s; "
            f"follow it at /api/v1/executions/{view.id}",
        )
    return await piston_result(runtime, view, chosen.language, ours.compiled)
