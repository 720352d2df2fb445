"""The Judge0 sub-application mounted at /judge0: Judge0's error shapes, and its information
routes (about, configuration, statuses, languages). Submissions are in routes.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.datastructures import State

from codeexec_server.compat.judge0 import routes
from codeexec_server.compat.judge0.catalog import (
    ABOUT,
    JUDGE0_VERSION,
    STATUSES,
    Judge0Config,
    available,
    language_out,
)
from codeexec_server.compat.judge0.request import Judge0Rejected, our_field
from codeexec_server.compat.judge0.view import NOT_UTF8, NotUtf8
from codeexec_server.compat.keys import compat_principal
from codeexec_server.compat.peer_app import peer_app
from codeexec_server.compat.running import runtime_of
from codeexec_server.keystore import Principal
from codeexec_server.problems import ApiProblem

Caller = Annotated[Principal, Depends(compat_principal)]
info = APIRouter()


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers=headers)


def build(state: State) -> FastAPI:
    api = peer_app("Judge0 CE API (codeexec)", state, error)

    @api.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem) -> JSONResponse:
        if exc.status == 422 and exc.errors:
            found: dict[str, list[str]] = {}
            for e in exc.errors:
                found.setdefault(our_field(e.field), []).append(e.message)
            return JSONResponse(found, 422, headers=exc.headers)
        return error(exc.status, exc.detail, exc.headers)

    @api.exception_handler(Judge0Rejected)
    async def _rejected(request: Request, exc: Judge0Rejected) -> JSONResponse:
        return JSONResponse(exc.errors, 422)

    @api.exception_handler(NotUtf8)
    async def _not_utf8(request: Request, exc: NotUtf8) -> JSONResponse:
        return error(400, NOT_UTF8)

    api.include_router(info)
    api.include_router(routes.router)
    return api


@info.get("/about")
async def about(caller: Caller) -> dict[str, str]:
    return ABOUT


@info.get("/version", response_class=PlainTextResponse)
async def version(caller: Caller) -> str:
    return JUDGE0_VERSION


@info.get("/config_info")
async def config_info(request: Request, caller: Caller) -> dict[str, Any]:
    return Judge0Config.of(request.app.state.limits.document).info()


@info.get("/statuses")
async def statuses(caller: Caller) -> list[dict[str, Any]]:
    return [{"id": i, "description": name} for i, name in STATUSES]


@info.get("/languages")
async def languages(request: Request, caller: Caller) -> list[dict[str, Any]]:
    found = available(runtime_of(request).language_list)
    return [{"id": j.id, "name": j.name(r.version)} for j, r in found]


@info.get("/languages/all")
async def all_languages(request: Request, caller: Caller) -> list[dict[str, Any]]:
    found = available(runtime_of(request).language_list)
    named = [{"id": j.id, "name": j.name(r.version), "is_archived": False} for j, r in found]
    return sorted(named, key=lambda x: str(x["name"]))


@info.get("/languages/{language_id}")
async def language(request: Request, language_id: str, caller: Caller) -> Any:
    for j0, runtime in available(runtime_of(request).language_list):
        if str(j0.id) == language_id:
            return language_out(j0, runtime)
    return error(404, f"language with id {language_id} doesn't exist")


@info.post("/authenticate")
async def authenticate(caller: Caller) -> dict[str, str]:
    return {}


@info.post("/authorize")
async def authorize(caller: Caller) -> Any:
    return {} if caller.is_admin else error(403, "this needs an admin key")
