"""Errors as application/problem+json, naming the offending field, and the request size bound."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codeexec.domain.aggregate import IllegalTransition
from codeexec.ports.sandbox import UnknownLanguage, UnknownVersion
from codeexec.runtime import IdempotencyKeyReused
from codeexec.service.admission import AdmissionRefused
from codeexec.service.store_thread import StoreBusy
from codeexec_server.schemas import FieldError, Problem

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


class ApiProblem(Exception):
    def __init__(
        self,
        status: int,
        detail: str = "",
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
        limit: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors, self.headers = status, detail, errors, headers
        self.limit = limit


def field_error(field: str, message: str) -> ApiProblem:
    return ApiProblem(422, f"{field}: {message}", [FieldError(field=field, message=message)])


@contextmanager
def as_problems(what: str) -> Iterator[None]:
    """A command on an aggregate: unknown answers 404, a transition its state forbids 409."""
    try:
        yield
    except LookupError:
        raise ApiProblem(404, f"no {what}") from None
    except IllegalTransition as error:
        raise ApiProblem(409, str(error)) from None


def refused_problem(error: AdmissionRefused) -> ApiProblem:
    """413 for a submission the quota can never hold, else 429 with Retry-After when waiting
    makes room; the problem names the limit."""
    refusal = error.refusal
    if refusal.too_large:
        return ApiProblem(413, refusal.message, limit=refusal.limit)
    headers = None
    if refusal.retry_after_s is not None:
        headers = {"Retry-After": str(max(1, math.ceil(refusal.retry_after_s)))}
    return ApiProblem(429, refusal.message, headers=headers, limit=refusal.limit)


def reused_key_problem(error: IdempotencyKeyReused) -> ApiProblem:
    """422, as the IETF idempotency-key draft asks for a key reused with another payload."""
    return ApiProblem(422, str(error), [FieldError(field="Idempotency-Key", message=str(error))])


def problem_response(
    status: int,
    detail: str = "",
    errors: Sequence[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    limit: str | None = None,
) -> JSONResponse:
    body = Problem(
        type=f"https://codeexec.dev/problems/{status}",
        title=TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        errors=list(errors) if errors else None,
        limit=limit,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status, headers=headers, media_type=PROBLEM_JSON
    )


def _field_name(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, exc.errors, exc.headers, exc.limit)

    @app.exception_handler(StoreBusy)
    async def _store_busy(request: Request, exc: StoreBusy) -> JSONResponse:
        # Nothing was recorded: the client may simply retry.
        return problem_response(503, str(exc), None, {"Retry-After": exc.retry_after})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            # A JSON syntax error's loc is a character offset, not a field.
            FieldError(field="body", message="not valid JSON")
            if e.get("type") == "json_invalid"
            else FieldError(
                field=_field_name(e.get("loc", ())),
                message=str(e.get("msg", "")).removeprefix("Value error, "),
            )
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        return problem_response(422, detail, errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
        return problem_response(exc.status_code, str(exc.detail), None, headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal error; see the server log")


def _allowed_methods(request: Request) -> set[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return methods


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries declaring problem bodies for these statuses."""
    return {
        status: {
            "description": TITLES.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


class BodySizeLimit:
    """Answers 413 for bodies over the bound, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # An HTTPException: FastAPI's body reader passes it on as it is, where
                    # any other error while reading becomes a 400.
                    raise HTTPException(413, f"the body is larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, f"the body is larger than {self.max_bytes} bytes")
        await response(scope, receive, send)


@contextmanager
def submission_problems() -> Iterator[None]:
    """The embedded API's refusals of a submission as problem documents: one mapping for
    our own route and the peers' compat routes alike."""
    try:
        yield
    except UnknownVersion as error:
        raise field_error("version", str(error)) from None
    except UnknownLanguage as error:
        raise field_error("language", str(error)) from None
    except AdmissionRefused as error:
        raise refused_problem(error) from None
    except IdempotencyKeyReused as error:
        raise reused_key_problem(error) from None
