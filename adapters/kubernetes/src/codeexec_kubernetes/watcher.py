"""One watch of this worker's pods (list, then watch from its resourceVersion), fanned out to runs.

A watch that ends (its timeout, a dropped connection) resumes from the last resourceVersion
seen; one that has expired (410 Gone) lists again and hands every run its pod's current state
(and a deletion to runs whose pod is no longer listed), so no run misses its final state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from codeexec_kubernetes.api import KubeApi, KubeApiError

log = logging.getLogger(__name__)

Listener = Callable[[str, dict[str, Any]], None]
"""Called with the event type (ADDED, MODIFIED, DELETED, LISTED) and the pod."""

WATCH_TIMEOUT_S = 240


class PodWatcher:
    def __init__(self, api: KubeApi, selector: str, watch_timeout_s: int = WATCH_TIMEOUT_S) -> None:
        self.api = api
        self.selector = selector
        self.watch_timeout_s = watch_timeout_s
        self.resource_version: str | None = None
        self.relists = 0
        self._listeners: dict[str, Listener] = {}
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, name: str, listener: Listener) -> None:
        self._listeners[name] = listener

    def unsubscribe(self, name: str) -> None:
        self._listeners.pop(name, None)

    async def start(self) -> None:
        """List once (so a failure to reach the API shows at start), then watch."""
        await self._relist()
        self._task = asyncio.create_task(self._watch_forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _relist(self) -> None:
        listing = await self.api.list("pod", self.selector)
        self.resource_version = str(listing["metadata"]["resourceVersion"])
        self.relists += 1
        seen = set()
        for pod in listing.get("items") or []:
            name = pod["metadata"]["name"]
            seen.add(name)
            self._dispatch("LISTED", pod)
        for name in list(self._listeners):
            if name not in seen:  # deleted while no watch was open
                self._dispatch("DELETED", {"metadata": {"name": name}})

    def _dispatch(self, kind: str, pod: dict[str, Any]) -> None:
        listener = self._listeners.get(pod["metadata"]["name"])
        if listener is not None:
            listener(kind, pod)

    async def _watch_forever(self) -> None:
        delay = 0.05
        while True:
            try:
                if self.resource_version is None:
                    await self._relist()
                await self._watch_once()
                delay = 0.05
            except KubeApiError as error:
                if error.status == 410:
                    self.resource_version = None
                    continue
                log.warning("pod watch failed (%s); again in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                log.info("pod watch broke (%r); resuming from %s", error, self.resource_version)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _watch_once(self) -> None:
        assert self.resource_version is not None
        response = await self.api.watch_pods(
            self.selector, self.resource_version, self.watch_timeout_s
        )
        try:
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 0)
                    raise KubeApiError(code, f"watch: {obj.get('message', obj)}")
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if version:
                    self.resource_version = str(version)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._dispatch(kind, obj)
        finally:
            response.release()
