"""Admin limits kept in the event store: read by every process, changed by events.

`StoredLimits` reads the latest `LimitsChanged` (one row, however many changes there were)
and records new ones; `LimitsFollower` keeps a process's copy current: it loads the limits
at start, again whenever its ExecutionFeed is woken for the limits' id (the LiveFeed does
that for every process following the audit log), and every `refresh_s` in case a wake-up
was missed. An existing limits.json (how earlier versions kept them) is adopted once, as the
first change, when the store has none."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import cast

from eventsourcing.persistence import IntegrityError

from codeexec.domain.admin_limits import LIMITS_ID, AdminLimits
from codeexec.domain.aggregate import Cause
from codeexec.domain.limits import LimitsDocument
from codeexec.domain.operations_events import LimitsChanged
from codeexec.service.projections import ExecutionFeed
from codeexec.service.read_model_projector import Blocking
from codeexec.service.store import ExecutionStore

log = logging.getLogger(__name__)
ATTEMPTS = 5  # a change replaces the whole document: after a conflict, it is simply redone


def latest_change(store: ExecutionStore) -> LimitsChanged | None:
    """The last change recorded (one row, however many changes there were)."""
    stored = store.recorder.select_events(LIMITS_ID, desc=True, limit=1)
    if not stored:
        return None
    return cast(LimitsChanged, store.mapper.to_domain_event(stored[0]))


class StoredLimits:
    def __init__(self, store: ExecutionStore, default: LimitsDocument) -> None:
        self.store, self.default = store, default

    def latest(self) -> LimitsChanged | None:
        return latest_change(self.store)

    def current(self) -> LimitsDocument:
        """The limits in force: the last change, or the configured default if none."""
        latest = self.latest()
        return latest.limits if latest is not None else self.default

    def change(self, document: LimitsDocument, by: str, now: datetime) -> LimitsChanged:
        """Record new limits (ValueError, recording nothing, if they are inconsistent)."""
        for attempt in range(ATTEMPTS):
            latest = self.latest()
            limits = AdminLimits.new(by)
            if latest is not None:
                limits._mutate(latest)  # the aggregate's state is its last document
            limits.change(document, by, Cause(now, uuid.uuid4(), None))
            events = limits.collect_events()
            try:
                self.store.record(events)
            except IntegrityError:
                if attempt == ATTEMPTS - 1:
                    raise
                continue  # another admin changed them meanwhile: ours replaces theirs
            return cast(LimitsChanged, events[0])
        raise AssertionError("unreachable")

    def adopt_file(self, path: Path, now: datetime) -> bool:
        """Upgrades: record limits.json as the first change if the store has none yet."""
        if not path.exists() or self.latest() is not None:
            return False
        document = LimitsDocument.model_validate_json(path.read_text())
        self.change(document, f"file:{path.name}", now)
        return True


class LimitsFollower:
    def __init__(
        self,
        limits: StoredLimits,
        feed: ExecutionFeed,
        on_change: Callable[[LimitsDocument], None],
        *,
        blocking: Blocking = asyncio.to_thread,
        refresh_s: float = 30.0,
    ) -> None:
        self.limits, self.feed, self.on_change = limits, feed, on_change
        self.blocking, self.refresh_s = blocking, refresh_s
        self.version = -1  # of the document last handed to on_change (0: the default)
        self._stopping = asyncio.Event()

    async def refresh(self) -> None:
        latest = await self.blocking(self.limits.latest)
        version = latest.aggregate_version if latest is not None else 0
        if version != self.version:
            self.version = version
            self.on_change(latest.limits if latest is not None else self.limits.default)

    async def run(self) -> None:
        while not self._stopping.is_set():
            # Watch before reading: a change recorded while we read still wakes us.
            signal = self.feed.watch(LIMITS_ID)
            try:
                await self.refresh()
                with suppress(TimeoutError):
                    async with asyncio.timeout(self.refresh_s):
                        await signal.wait()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cannot read the limits; retrying")
                await asyncio.sleep(min(self.refresh_s, 1.0))
            finally:
                self.feed.unwatch(LIMITS_ID, signal)

    def stop(self) -> None:
        self._stopping.set()
