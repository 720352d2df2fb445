"""The health port of a `codeexec role` process: /health/live and /health/ready for probes.

A plain asyncio HTTP/1.1 server (one GET per connection, JSON bodies), so a role process
carries no web framework. Live: the process answers and no role has crashed (a restart would
help). Ready: the runtime started, every role runs, and the ports it uses answer: the event
store and the read model (a real read of each) and the bus (the broker lists the declared
topics). Not ready is 503 with a JSON body naming what is not."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any
from uuid import UUID

from codeexec.domain.routing import TOPICS
from codeexec.ports.bus import EventBus
from codeexec.runtime import Codeexec

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 2.0
NOBODY = UUID(int=0)  # an execution id no one has: reading it is a real store round trip


def role_states(runtime: Codeexec) -> dict[str, str]:
    """Each role's state: `running`, or why it is not (`stopped`, `crashed: ...`)."""
    return {name: str(state) for name, state in runtime.health().items()}


def crashed(runtime: Codeexec) -> dict[str, str]:
    return {k: v for k, v in role_states(runtime).items() if v.startswith("crashed")}


async def probe(
    check: Callable[[], Awaitable[Any]], timeout_s: float = PROBE_TIMEOUT_S
) -> str | None:
    """None when the check answers in time, else why not."""
    try:
        async with asyncio.timeout(timeout_s):
            await check()
    except TimeoutError:
        return f"no answer in {timeout_s:g} s"
    except Exception as error:  # any failure means not ready; it is reported
        return f"{type(error).__name__}: {error}"
    return None


async def readiness(runtime: Codeexec | None, bus: EventBus | None) -> dict[str, str]:
    """What is not ready, by name (empty: ready)."""
    if runtime is None or bus is None or not runtime.started:
        return {"runtime": "not started"}
    problems = {k: v for k, v in role_states(runtime).items() if v != "running"}
    store = await probe(lambda: runtime.last_version(NOBODY))
    if store is not None:
        problems["store"] = store
    read_model = await probe(runtime.queries.ping)
    if read_model is not None:
        problems["read_model"] = read_model
    # The broker answers and has the topics (one metadata request; lag would ask for the
    # committed offset of every partition of every group, too slow for a probe).
    topics = await probe(lambda: bus.declare(list(TOPICS.values())))
    if topics is not None:
        problems["bus"] = topics
    return problems


class HealthServer:
    """`runtime` and `bus` give None until the runtime has started."""

    def __init__(
        self,
        runtime: Callable[[], Codeexec | None],
        bus: Callable[[], EventBus | None],
        host: str,
        port: int,
    ) -> None:
        self.runtime, self.bus, self.host, self.port = runtime, bus, host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)

    @property
    def bound_port(self) -> int:
        """The port it listens on (the one given, or the one chosen for port 0)."""
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        runtime = self.runtime()
        if path == "/health/live":
            broken = crashed(runtime) if runtime is not None else {}
            if broken:
                return 503, {"status": "down", "crashed": broken}
            return 200, {"status": "ok"}
        if path == "/health/ready":
            problems = await readiness(runtime, self.bus())
            roles = role_states(runtime) if runtime is not None else {}
            if problems:
                return 503, {"status": "unavailable", "not_ready": problems, "roles": roles}
            return 200, {"status": "ok", "roles": roles}
        return 404, {"status": "not found", "paths": ["/health/live", "/health/ready"]}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: nothing in them matters here
                parts = request.decode("latin-1").split()
                if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
                    status, body = 405, {"status": "method not allowed"}
                else:
                    status, body = await self.answer(parts[1].split("?")[0])
                data = json.dumps(body).encode()
                reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(
                    status, "Service Unavailable"
                )
                head = (
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
                )
                writer.write(head.encode() + (data if parts[:1] != ["HEAD"] else b""))
                await writer.drain()
        except (TimeoutError, ConnectionError) as error:
            log.debug("health request dropped: %s", error)
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()
