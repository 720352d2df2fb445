"""Judge0's callbacks: when a submission ends, PUT its result (Judge0's default fields, base64)
to the `callback_url` it gave, retried; never to loopback, private or other non-public
addresses unless an admin allows them (CODEEXEC_ALLOW_PRIVATE_CALLBACKS=1).

The address is checked when the submission is made and again just before each delivery, and
the request goes to the very address checked (not a second DNS answer)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import httpx

from codeexec.runtime import Codeexec
from codeexec_server.compat.judge0.store import Judge0Store

log = logging.getLogger(__name__)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Render = Callable[[UUID], Awaitable[dict[str, Any]]]


class CallbackRefused(ValueError):
    """The URL is not one results may be sent to."""


def _public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def checked_address(url: str, allow_private: bool) -> tuple[httpx.URL, str]:
    """The URL and the address to deliver to; CallbackRefused says why not."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as error:
        raise CallbackRefused(f"is not a valid URL: {error}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise CallbackRefused("must be an http or https URL with a host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            parsed.host, port, type=socket.SOCK_STREAM
        )
    except OSError as error:
        raise CallbackRefused(f"host {parsed.host!r} cannot be resolved: {error}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    if not addresses:
        raise CallbackRefused(f"host {parsed.host!r} has no address")
    refused = [str(ip) for ip in addresses if not _public(ip)]
    if refused and not allow_private:
        raise CallbackRefused(
            f"resolves to a loopback or private address ({', '.join(refused)}); an admin "
            "may allow those with CODEEXEC_ALLOW_PRIVATE_CALLBACKS=1"
        )
    return parsed, str(addresses[0])


class CallbackSender:
    """One task per submission with a callback: wait for its end, then deliver."""

    def __init__(
        self,
        store: Judge0Store,
        render: Render,
        *,
        allow_private: bool,
        tries: int,
        timeout: float,
        backoff: float = 0.5,
    ) -> None:
        self.store, self.render = store, render
        self.allow_private, self.tries, self.timeout, self.backoff = (
            allow_private,
            tries,
            timeout,
            backoff,
        )
        self.tasks: set[asyncio.Task[None]] = set()

    def resume(self, runtime: Codeexec) -> None:
        """Callbacks that were pending when the server last stopped."""
        for token, url in self.store.pending_callbacks():
            self.send_when_done(runtime, token, url)

    def send_when_done(self, runtime: Codeexec, token: UUID, url: str) -> None:
        task = asyncio.create_task(self._deliver(runtime, token, url), name=f"callback-{token}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, runtime: Codeexec, token: UUID, url: str) -> None:
        try:
            await runtime.wait(token)
            body = await self.render(token)
        except Exception:  # a bug here must not leave the callback pending forever
            log.exception("callback of %s could not be prepared", token)
            self.store.callback_done(token, False)
            return
        delivered = False
        for attempt in range(self.tries):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                delivered = await self._put(url, body)
            except CallbackRefused as error:
                log.warning("callback of %s refused: %s", token, error)
                break
            except httpx.HTTPError as error:
                log.info("callback of %s, try %d: %s", token, attempt + 1, error)
            if delivered:
                break
        self.store.callback_done(token, delivered)

    async def _put(self, url: str, body: dict[str, Any]) -> bool:
        parsed, address = await checked_address(url, self.allow_private)
        headers = {"Host": parsed.netloc.decode("ascii"), "Content-Type": "application/json"}
        extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            response = await client.put(
                parsed.copy_with(host=address), json=body, headers=headers, extensions=extensions
            )
        # A server error may pass; anything else is the receiver's answer, as Judge0 takes it.
        return response.status_code < 500

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
