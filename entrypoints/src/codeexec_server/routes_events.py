"""Server-sent events of one execution: history, then live events until the terminal one.

`id` is the event's aggregate_version, so a reconnect with Last-Event-ID resumes exactly;
an execution that already finished gets its history and the stream closes (never hangs)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from codeexec.domain.events import DomainEvent
from codeexec.runtime import Codeexec
from codeexec_server.auth import StreamUser
from codeexec_server.problems import problem_responses
from codeexec_server.routes_executions import Runtime, owned

router = APIRouter(prefix="/api/v1", tags=["executions"])
_END = object()
SSE_EVENT_SCHEMA = {
    "type": "object",
    "description": "one server-sent event (heartbeats are comments, not events)",
    "properties": {
        "id": {"type": "string", "description": "the event's aggregate_version"},
        "event": {"type": "string", "description": "the event type, e.g. ExecutionOutput"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}


def format_event(event: DomainEvent) -> str:
    data = json.dumps(event.model_dump(mode="json"), separators=(",", ":"))
    return f"id: {event.aggregate_version}\nevent: {event.type_name}\ndata: {data}\n\n"


async def sse_stream(
    runtime: Codeexec, execution_id: UUID, after: int, follow: bool, heartbeat_s: float
) -> AsyncIterator[str]:
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        try:
            async for event in runtime.events(execution_id, after, follow=follow):
                await queue.put(event)
        finally:
            await queue.put(_END)

    task = asyncio.create_task(pump())
    try:
        yield "retry: 2000\n: stream open\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), heartbeat_s)
            except TimeoutError:
                yield ": heartbeat\n\n"
                continue
            if item is _END:
                break
            assert isinstance(item, DomainEvent)
            yield format_event(item)
        if task.done() and task.exception() is not None:
            yield 'event: error\ndata: {"detail": "the event stream failed"}\n\n'
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await task


@router.get(
    "/executions/{execution_id}/events",
    summary="Server-sent events of one execution (live)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "text/event-stream: `event` = event type, `id` = aggregate "
            "version, `data` = the event as JSON; comments are heartbeats",
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
        },
        **problem_responses(401, 404, 422),
    },
)
async def execution_events(
    execution_id: UUID,
    request: Request,
    principal: StreamUser,
    runtime: Runtime,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="resume after this id (as sent by browsers)"),
    ] = None,
    after: Annotated[int, Query(ge=0, le=10**9, description="resume after this id")] = 0,
) -> StreamingResponse:
    view = owned(runtime, execution_id, principal)
    resume = last_event_id.strip() if last_event_id else ""
    # An id we never sent (not a small integer) is ignored: the stream starts from the beginning.
    start = max(after, int(resume) if resume.isdigit() and len(resume) < 10 else 0)
    heartbeat = request.app.state.settings.heartbeat_s
    return StreamingResponse(
        sse_stream(runtime, execution_id, start, not view.terminal, heartbeat),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
