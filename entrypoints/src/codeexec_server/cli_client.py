"""The CLI's HTTP side: a small client for a codeexec server, including its event stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


class ServerError(Exception):
    """The server answered with a problem, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SseEvent:
    id: str
    event: str
    data: dict[str, Any]


class ApiClient:
    def __init__(self, server: str, key: str | None, timeout: float = 70.0) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.AsyncClient(base_url=server.rstrip("/"), headers=headers, timeout=timeout)

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ServerError(f"cannot reach {self.http.base_url}: {error}") from error
        if response.status_code >= 400:
            raise ServerError(_problem_text(response), response.status_code)
        return response.json()

    async def events(self, execution_id: str, after: int = 0) -> AsyncIterator[SseEvent]:
        """Follow the execution's events; reconnects resume from the last id seen."""
        last = after
        for _ in range(100):
            try:
                async with self.http.stream(
                    "GET",
                    f"/api/v1/executions/{execution_id}/events",
                    headers={"Last-Event-ID": str(last)},
                    timeout=httpx.Timeout(10.0, read=None),
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise ServerError(_problem_text(response), response.status_code)
                    async for event in parse_sse(response.aiter_lines()):
                        last = int(event.id or last)
                        yield event
                    return
            except (httpx.RemoteProtocolError, httpx.ReadError):
                continue
        raise ServerError("the event stream kept breaking")


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[SseEvent]:
    event_id, name = "", "message"
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield SseEvent(event_id, name, json.loads("\n".join(data)))
            event_id, name, data = "", "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                event_id = value
            elif field == "event":
                name = value
            elif field == "data":
                data.append(value)


def _problem_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        return f"HTTP {response.status_code}: {body.get('detail') or body.get('title')}"
    return f"HTTP {response.status_code}"
