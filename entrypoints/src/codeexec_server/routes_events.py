"""Server-sent events of one execution: history, then live events until the terminal one.

`id` is the event's aggregate_version, so a reconnect with Last-Event-ID resumes exactly;
an execution that already finished gets its history and the stream closes (never hangs)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from codeexec_server.auth import StreamUser
from codeexec_server.event_stream import EventStreamResponse, sse_stream
from codeexec_server.open_requests import OpenRequests
from codeexec_server.problems import problem_responses
from codeexec_server.routes_executions import Runtime, owned

router = APIRouter(prefix="/api/v1", tags=["executions"])
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
        **problem_responses(401, 404, 422, 429),
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
    open_requests: OpenRequests = request.app.state.open_requests
    give_back = open_requests.streams.take(principal.user_id)
    settings = request.app.state.settings
    events = runtime.events(execution_id, start, follow=not view.terminal)
    return EventStreamResponse(
        sse_stream(events, settings.heartbeat_s), settings.stream_write_timeout_s, give_back
    )
