"""The clients of the system tests: submitters that retry through a dead API with their
Idempotency-Key, and event-stream followers that reconnect with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from uuid import UUID

import httpx

from codeexec.domain.events import TERMINAL_EVENT_TYPES

TERMINAL_EVENTS = frozenset(t.model_fields["type"].default for t in TERMINAL_EVENT_TYPES)
RETRIED_STATUSES = frozenset({502, 503, 504})


def chunks_program(tag: str, chunks: int, pause_s: float) -> tuple[str, bytes]:
    """A Python program printing `chunks` lines with a pause after each, and its stdout."""
    source = (
        "import time\n"
        f"for i in range({chunks}):\n"
        f"    print(f'{tag} chunk {{i}}', flush=True)\n"
        f"    time.sleep({pause_s})\n"
    )
    return source, b"".join(f"{tag} chunk {i}\n".encode() for i in range(chunks))


@dataclass
class Submission:
    key: str
    user: str
    source: str
    expected_stdout: bytes
    id: UUID | None = None
    attempts: int = 0
    refused: str | None = None  # a 4xx answer: not accepted


async def submit(
    http: httpx.AsyncClient, token: str, submission: Submission, within_s: float = 120.0
) -> Submission:
    """POST until the API answers 202 (or 200 for a repeat of the key): connection errors
    and 5xx are retried with the same Idempotency-Key, so a request the dead API may or
    may not have recorded is never recorded twice."""
    deadline = time.monotonic() + within_s
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": submission.key}
    body = {"language": "python", "source": submission.source}
    while True:
        submission.attempts += 1
        try:
            response = await http.post("/api/v1/executions", json=body, headers=headers)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code in (200, 202):
            submission.id = UUID(response.json()["id"])
            return submission
        if response is not None and response.status_code not in RETRIED_STATUSES:
            submission.refused = f"{response.status_code}: {response.text}"
            return submission
        if time.monotonic() > deadline:
            raise AssertionError(f"submission {submission.key} not accepted in {within_s} s")
        await asyncio.sleep(0.2)


@dataclass
class Follower:
    """Follows one execution's event stream to its terminal event, reconnecting with
    Last-Event-ID whenever the stream breaks (the API process killed)."""

    execution_id: UUID
    token: str
    events: list[tuple[int, str]] = field(default_factory=list)
    connects: int = 0
    breaks: int = 0

    @property
    def done(self) -> bool:
        return bool(self.events) and self.events[-1][1] in TERMINAL_EVENTS

    async def run(self, http: httpx.AsyncClient, within_s: float = 240.0) -> Follower:
        deadline = time.monotonic() + within_s
        while not self.done:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.execution_id}: no terminal event; got {self.events}")
            try:
                await self._read(http)
            except httpx.TransportError:
                self.breaks += 1
            if not self.done:
                await asyncio.sleep(0.2)
        return self

    async def _read(self, http: httpx.AsyncClient) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.events:
            headers["Last-Event-ID"] = str(self.events[-1][0])
        url = f"/api/v1/executions/{self.execution_id}/events"
        async with http.stream("GET", url, headers=headers, timeout=30) as response:
            if response.status_code != 200:
                await response.aread()
                if response.status_code in RETRIED_STATUSES:
                    return
                raise AssertionError(f"{url}: {response.status_code} {response.text}")
            self.connects += 1
            event_id, name, data = "", "message", ""
            async for line in response.aiter_lines():
                if line == "":
                    if data:
                        json.loads(data)  # every event's data is a JSON document
                        self.events.append((int(event_id), name))
                        if name in TERMINAL_EVENTS:
                            return
                    event_id, name, data = "", "message", ""
                elif not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    if key == "id":
                        event_id = value
                    elif key == "event":
                        name = value
                    elif key == "data":
                        data += value


def new_key() -> str:
    return uuid.uuid4().hex
