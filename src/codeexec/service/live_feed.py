"""LiveFeed: wakes this process's followers of executions from the bus, whoever recorded.

An API process's event streams (SSE, `events()`, `wait()`) wait on its ExecutionFeed, then
read the new events from the store. Local writes wake the feed directly; events recorded by
other processes (the worker's output, the coordinator's decisions) reach it here: the feed
tails `execution_events` from its end, outside any consumer group (every API process gets
every event), and wakes the followers of each message's execution (the message key), without
even decoding the event. A missed wake-up costs latency, never an event: followers also
re-read the store on a timeout."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from uuid import UUID

from codeexec.domain.events import TERMINAL_TYPE_NAMES
from codeexec.domain.routing import EXECUTION_EVENTS
from codeexec.ports.bus import H_TYPE, EventBus
from codeexec.service.projections import ExecutionFeed

log = logging.getLogger(__name__)


class LiveFeed:
    def __init__(
        self,
        bus: EventBus,
        feed: ExecutionFeed,
        topics: Sequence[str] = (EXECUTION_EVENTS,),
        retry_s: float = 1.0,
    ) -> None:
        self.bus, self.feed, self.topics, self.retry_s = bus, feed, tuple(topics), retry_s
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()  # set once the tail is in place: later events wake
        self.woken = 0  # messages that woke followers (for metrics and tests)

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                tail = await self.bus.tail(self.topics)
            except NotImplementedError:
                raise
            except Exception:
                log.exception("live feed cannot tail %s; retrying", self.topics)
                await asyncio.sleep(self.retry_s)
                continue
            self.ready.set()
            try:
                while not self._stopping.is_set():
                    for message in await tail.poll(1000, timeout=0.5):
                        ended = message.headers.get(H_TYPE) in TERMINAL_TYPE_NAMES
                        self._wake(message.key, ended)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live feed lost its tail of %s; reopening", self.topics)
                await asyncio.sleep(self.retry_s)
            finally:
                self.ready.clear()
                await tail.close()

    def _wake(self, key: str, ended: bool = False) -> None:
        try:
            execution_id = UUID(key)
        except ValueError:
            return  # not an execution's event (a stray message)
        self.feed.notify(execution_id, ended)
        self.woken += 1

    def stop(self) -> None:
        self._stopping.set()
