"""Who calls a peer's API: the key in whichever header that peer's clients can send.

Judge0's clients send `X-Auth-Token: KEY`; piston-rspy sends a bare `Authorization: KEY`; the
npm piston-client cannot set headers, so its key travels as the password (or the user) of the
URL's user info, which arrives as HTTP Basic auth. Then the same check as our own API."""

from __future__ import annotations

import base64
import binascii

from fastapi import Request

from codeexec_server.auth import _resolve
from codeexec_server.keystore import Principal
from codeexec_server.problems import ApiProblem


def presented_key(request: Request) -> str | None:
    token = request.headers.get("x-auth-token", "").strip()
    if token:
        return token
    authorization = request.headers.get("authorization", "").strip()
    if not authorization:
        return None
    scheme, _, rest = authorization.partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer" and rest:
        return rest
    if scheme.lower() == "basic" and rest:
        try:
            user, _, password = base64.b64decode(rest, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiProblem(401, "malformed Basic credentials") from None
        return password or user or None
    return authorization  # a bare key, as piston-rspy sends it


async def compat_principal(request: Request) -> Principal:
    return await _resolve(request, presented_key(request))
