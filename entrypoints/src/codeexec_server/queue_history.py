"""Queue history: a bounded ring of queue-depth samples this API process takes every second.

The operators' dashboard draws queue depth and running runs over time, and needs that
history the moment it opens. Each API process keeps its own ring (nothing is shared, so
nothing is written to the store for a chart): where the coordinator runs in this process the
samples are its queue, exact; in an API-only process they are derived from the shared read
model (`/api/v1/admin/queue` says the same), so every API process of a deployment samples the
same figures, each since it started."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from codeexec.runtime import Codeexec

log = logging.getLogger(__name__)
QueueSource = Literal["coordinator", "read_model", "not started"]


@dataclass(frozen=True)
class QueueSample:
    time: datetime
    queued: int
    running: int
    lag: Mapping[str, int] = field(default_factory=dict)  # consumer lag per group


class QueueHistory:
    """The last `window_s / interval_s` samples, oldest first; memory never grows past that."""

    def __init__(self, interval_s: float, window_s: float) -> None:
        if interval_s < 0 or window_s < 0:
            raise ValueError("queue sampling interval and window must not be negative")
        self.interval_s, self.window_s = interval_s, window_s
        capacity = int(window_s / interval_s) if interval_s > 0 else 0
        self.samples: deque[QueueSample] = deque(maxlen=max(capacity, 1))
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = datetime.now(UTC)
        self.source: QueueSource = "not started"
        self._task: asyncio.Task[None] | None = None

    @property
    def capacity(self) -> int:
        return self.samples.maxlen or 0

    def start(self, runtime: Codeexec) -> None:
        """Sample in the background until `stop` (not at all when the interval is 0)."""
        local = "coordinator" in runtime.health()
        self.source = "coordinator" if local else "read_model"
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(runtime))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def sample(self, runtime: Codeexec) -> QueueSample:
        """Take one sample now and keep it."""
        status = await runtime.queue_status()
        lag = await runtime.backlog()
        taken = QueueSample(datetime.now(UTC), status.queued, status.running, lag)
        self.samples.append(taken)
        return taken

    async def _run(self, runtime: Codeexec) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            try:
                await self.sample(runtime)
            except Exception as error:  # a busy store costs one point, not the chart
                log.debug("queue sample skipped: %s", error)
            # On a fixed grid, so a slow sample does not stretch the time axis.
            due = max(due + self.interval_s, loop.time())
            await asyncio.sleep(due - loop.time())
