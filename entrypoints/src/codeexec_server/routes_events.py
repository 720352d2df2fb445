"""Server-sent events of one execution: history, then live events until the terminal one.

`id` is the event's aggregate_version, so a reconnect with Last-Event-ID resumes exactly;
an execution that already finished gets its history and the stream closes (never hangs)."""

from __future__ import annotations

import re
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
EVENT_ID = re.compile(r"[0-9]{1,9}")
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


def resume_point(last_event_id: str | None, after: int) -> int:
    """Where to resume. Only ASCII digits are ids we sent (`str.isdigit` also takes '²');
    anything else is ignored, as browsers may send whatever they kept."""
    resume = (last_event_id or "").strip()
    return max(after, int(resume) if EVENT_ID.fullmatch(resume) else 0)


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
    view = await owned(runtime, execution_id, principal)
    start = resume_point(last_event_id, after)
    if start > await runtime.last_version(execution_id):
        start = 0  # an id this execution never had: start from the beginning
    open_requests: OpenRequests = request.app.state.open_requests
    give_back = open_requests.streams.take(principal.user_id)
    settings = request.app.state.settings
    events = runtime.events(execution_id, start, follow=not view.terminal)
    return EventStreamResponse(
        sse_stream(events, settings.heartbeat_s), settings.stream_write_timeout_s, give_back
    )
