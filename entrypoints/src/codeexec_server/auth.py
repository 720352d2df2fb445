"""Authentication: API keys as `Authorization: Bearer`, roles user and admin.

Only the events route also takes `?access_token=`, because browsers' EventSource cannot send
headers. Anonymous access exists only when the dev server enables it, and only over loopback."""

from __future__ import annotations

import asyncio
from typing import Annotated

from eventsourcing.persistence import OperationalError
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from codeexec.ports.key_store import KeyStore, Principal
from codeexec.service.store_thread import StoreBusy
from codeexec_server.problems import ApiProblem
from codeexec_server.settings import ServerSettings, is_loopback

bearer = HTTPBearer(auto_error=False, description="an API key (`codeexec keys create`)")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def _authenticate(request: Request, key: str) -> Principal | None:
    """Bounded like a store call: a slow or unreachable key store cannot hold a request
    forever (StoreBusy: the API's 503 with Retry-After). A local SQLite file answers in
    place; a shared store answers off the event loop (`KeyStore.lookup`)."""
    settings: ServerSettings = request.app.state.settings
    keystore: KeyStore = request.app.state.keystore
    try:
        async with asyncio.timeout(settings.store_busy_timeout_s):
            return await keystore.lookup(key)
    except TimeoutError:
        raise StoreBusy("the key store did not answer in time") from None
    except OperationalError as error:
        raise StoreBusy(f"the key store cannot be reached: {error}") from None


async def _resolve(request: Request, key: str | None) -> Principal:
    settings: ServerSettings = request.app.state.settings
    if key:
        principal = await _authenticate(request, key)
        if principal is None:
            raise ApiProblem(
                401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
            )
        return principal
    if settings.allow_anonymous:
        if over_loopback(request):
            return Principal(settings.anonymous_user, "user")
        raise ApiProblem(
            401,
            "an API key is required: anonymous access is only served over loopback",
            headers={"WWW-Authenticate": "Bearer"},
        )
    raise ApiProblem(401, "an API key is required", headers={"WWW-Authenticate": "Bearer"})


def over_loopback(request: Request) -> bool:
    """Whether this request came to a loopback address from a loopback address. Checked per
    request, from what the server really bound and accepted: however the app was launched
    (`--host 0.0.0.0`, a settings host that does not match), others never get anonymity."""
    ends = (request.scope.get("server"), request.scope.get("client"))
    return all(end is not None and is_loopback(str(end[0])) for end in ends)


async def current_principal(request: Request, credentials: Credentials) -> Principal:
    return await _resolve(request, credentials.credentials if credentials else None)


async def stream_principal(
    request: Request,
    credentials: Credentials,
    access_token: Annotated[
        str | None, Query(description="API key, for EventSource clients that cannot send headers")
    ] = None,
) -> Principal:
    return await _resolve(request, credentials.credentials if credentials else access_token)


async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise ApiProblem(403, "this needs an admin key")
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]
StreamUser = Annotated[Principal, Depends(stream_principal)]
Admin = Annotated[Principal, Depends(admin_principal)]
