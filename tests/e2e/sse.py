"""A small synchronous server-sent-events reader for the e2e tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Sse:
    id: int
    event: str
    data: dict[str, Any]


def read_events(
    client: httpx.Client,
    execution_id: str,
    last_event_id: int | None = None,
    until: Callable[[Sse], bool] | None = None,
    within_s: float = 30.0,
) -> list[Sse]:
    """Every event until the server closes the stream (it must, after the terminal event),
    or until `until` holds for the last event read. Fails after `within_s` seconds (the
    server's heartbeats keep lines coming, so the deadline is checked while waiting)."""
    deadline = time.monotonic() + within_s
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    events: list[Sse] = []
    event_id, name, data = "0", "message", ""
    with client.stream(
        "GET", f"/api/v1/executions/{execution_id}/events", headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            assert time.monotonic() < deadline, (
                f"no end of stream in {within_s} s; got only {[e.event for e in events]}"
            )
            if line == "":
                if data:
                    events.append(Sse(int(event_id), name, json.loads(data)))
                    if until is not None and until(events[-1]):
                        break
                event_id, name, data = "0", "message", ""
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                if key == "id":
                    event_id = value
                elif key == "event":
                    name = value
                elif key == "data":
                    data += value
    return events
