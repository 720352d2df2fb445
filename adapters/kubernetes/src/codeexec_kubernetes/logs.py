"""Follows a run container's log until the launcher's end frame, reconnecting when it drops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from codeexec_kubernetes.api import KubeApi, KubeApiError
from codeexec_kubernetes.frames import FrameReader, OutputFrame

log = logging.getLogger(__name__)


class LogFollower:
    """A dropped stream is opened again and read from the start; frames already seen are
    skipped by sequence number. Once the container has ended, one last full read is final:
    nothing more can come (a launcher that died leaves no end frame)."""

    def __init__(
        self,
        api: KubeApi,
        pod_name: str,
        on_frame: Callable[[OutputFrame], None],
        container_ended: asyncio.Event,
    ) -> None:
        self.api = api
        self.pod_name = pod_name
        self.reader = FrameReader()
        self.on_frame = on_frame
        self.container_ended = container_ended
        self.reconnects = 0
        self.error: str | None = None

    async def follow(self) -> None:
        delay = 0.05
        while not self.reader.ended:
            final = self.container_ended.is_set()
            try:
                response = await self.api.pod_log(self.pod_name)
            except KubeApiError as error:
                if error.status == 404:  # the pod is gone: what was read is all there is
                    self.error = f"log: {error.message}"
                    return
                if final or error.status not in (400,):  # 400: not started yet / transient
                    self.error = f"log: {error}"
                    if final:
                        return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self.reader.reset_stream()
            try:
                async for data in response.content.iter_any():
                    for frame in self.reader.feed(data):
                        self.on_frame(frame)
                    if self.reader.ended:
                        return
            except (aiohttp.ClientError, TimeoutError) as error:
                log.info("log of %s dropped: %r", self.pod_name, error)
            finally:
                response.release()
            if self.reader.ended or final:
                return
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
