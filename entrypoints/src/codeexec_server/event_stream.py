"""The server-sent events response: bounded writes, a write timeout and prompt clean-up.

Each event is written in pieces of at most WRITE_BYTES and the next piece is made only when
the server's transport took the last one (uvicorn's flow control), so a client that reads
slowly holds one event and one piece, whatever the execution's output size. A client that
takes no write within the timeout is dropped, and one that disconnects is noticed at once,
so neither holds a stream slot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator

from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from codeexec.domain.events import DomainEvent, to_json
from codeexec_server.open_requests import client_gone

log = logging.getLogger(__name__)
WRITE_BYTES = 64 * 1024


def sse_message(event: DomainEvent) -> Iterator[bytes | memoryview]:
    """One event as `id`, `event` and one `data` line (compact JSON has no newline)."""
    data = memoryview(to_json(event))
    yield f"id: {event.aggregate_version}\nevent: {event.type_name}\ndata: ".encode()
    for start in range(0, len(data), WRITE_BYTES):
        yield data[start : start + WRITE_BYTES]
    yield b"\n\n"


async def sse_stream(
    events: AsyncIterator[DomainEvent], heartbeat_s: float
) -> AsyncIterator[bytes | memoryview]:
    """The stream's bytes: events one at a time, a heartbeat comment after each silence."""
    yield b"retry: 2000\n: stream open\n\n"
    pending: asyncio.Future[DomainEvent] = asyncio.ensure_future(anext(events))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=heartbeat_s)
            if not done:
                yield b": heartbeat\n\n"
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            except Exception:
                log.exception("the event stream failed")
                yield b'event: error\ndata: {"detail": "the event stream failed"}\n\n'
                return
            for piece in sse_message(event):
                yield piece
            del event  # not kept while waiting for the next one
            pending = asyncio.ensure_future(anext(events))
    finally:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await events.aclose()  # type: ignore[attr-defined]


class ClientTooSlow(Exception):
    """The client took no write within the write timeout."""


class EventStreamResponse(StreamingResponse):
    """text/event-stream that ends when the events end, the client disconnects, or the
    client takes no write within `write_timeout_s`; `on_close` runs in every case."""

    body_iterator: AsyncIterator[bytes | memoryview]

    def __init__(
        self,
        content: AsyncIterator[bytes | memoryview],
        write_timeout_s: float,
        on_close: Callable[[], None],
    ) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.write_timeout_s = write_timeout_s
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.ensure_future(self.stream_response(self._timed(send)))
        gone = asyncio.ensure_future(client_gone(receive))
        try:
            await asyncio.wait({streaming, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, gone):
                task.cancel()
            await asyncio.gather(streaming, gone, return_exceptions=True)
            await self.body_iterator.aclose()  # type: ignore[attr-defined]
            self.on_close()
        if streaming.done() and not streaming.cancelled():
            error = streaming.exception()
            if isinstance(error, ClientTooSlow):
                log.info("dropped an event stream: no write taken in %s s", self.write_timeout_s)
            elif error is not None and not isinstance(error, OSError):
                raise error

    def _timed(self, send: Send) -> Send:
        async def timed(message: Message) -> None:
            # Not asyncio.wait_for: on 3.11 it swallows a cancel that arrives as the send
            # completes, and the stream would run on for a client that is gone.
            try:
                async with asyncio.timeout(self.write_timeout_s):
                    await send(message)
            except TimeoutError:
                raise ClientTooSlow from None

        return timed
