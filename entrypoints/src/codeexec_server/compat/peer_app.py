"""A peer's sub-application: the main app's state, and every error in the peer's own shape."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import State
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

Reply = Callable[[int, str, dict[str, str] | None], JSONResponse]
"""How the peer answers an error: status, message, headers."""


def peer_app(title: str, state: State, reply: Reply) -> FastAPI:
    """A FastAPI sub-app sharing the main app's state (settings, keys, runtime, limits,
    bounds) whose validation errors, HTTP errors and crashes all answer through `reply`."""
    api = FastAPI(title=title, openapi_url=None, docs_url=None, redoc_url=None)
    api.state = state

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return reply(400, "; ".join(str(e.get("msg", "")) for e in exc.errors()), None)

    @api.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return reply(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @api.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return reply(500, "internal error; see the server log", None)

    return api
