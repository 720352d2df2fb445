"""LiveOutput: a run's output chunks, kept for any number of readers that follow them live.

Each reader sees every chunk from the start, in order, then waits for more until the run's
output ends. Sandbox adapters (local and Kubernetes) share it for `SandboxRun.output()`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from codeexec.ports.sandbox import OutputChunk


class LiveOutput:
    def __init__(self) -> None:
        self._chunks: list[OutputChunk] = []
        self._more: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended = False

    def emit(self, chunk: OutputChunk | None) -> None:
        """Add a chunk, or (None) end the output; wakes every waiting reader."""
        if chunk is None:
            self._ended = True
        else:
            self._chunks.append(chunk)
        more, self._more = self._more, asyncio.get_running_loop().create_future()
        more.set_result(None)

    async def follow(self) -> AsyncIterator[OutputChunk]:
        seen = 0
        while True:
            while seen < len(self._chunks):
                seen += 1
                yield self._chunks[seen - 1]
            if self._ended:
                return
            await asyncio.shield(self._more)
