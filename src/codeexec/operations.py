"""Operations: the operator API (queue status, limits, dead letters, replays) of any process.

Nothing here needs a role in the same process: the queue status comes from the local
coordinator when it runs here and from the read model's counts otherwise; dead letters
and replay sessions are aggregates in the store, listed from indexes every process keeps
(snapshot plus the log after it, codeexec.runner); limits are `LimitsChanged` events that
every process follows (`StoredLimits` + `LimitsFollower`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from codeexec.domain.coordinator import CoordinatorConfig, QueueStatus, UserLimits
from codeexec.domain.dead_letter import DeadLetter
from codeexec.domain.limits import LimitsDocument, ResourceMaxima
from codeexec.domain.operations_events import LimitsChanged, ReplayFilter
from codeexec.domain.replay import ReplaySession
from codeexec.ports.execution_queries import ExecutionQueries
from codeexec.roles import RolePorts
from codeexec.runner import RoleRunner
from codeexec.service.dead_letters import BacklogLevel, DeadLetterManager
from codeexec.service.limits import LimitsFollower, StoredLimits
from codeexec.service.replays import ReplayService

T = TypeVar("T")
QUEUED_STATES = ("requested", "queued")
RUNNING_STATES = ("scheduled", "running")


def default_limits(config: CoordinatorConfig) -> LimitsDocument:
    return LimitsDocument.from_config(config, ResourceMaxima(), allow_user_priority=False)


class Limits:
    """The admin limits in force, as every process sees them: the latest stored change
    (`stored_document`, None until an admin made one), else the settings' coordinator config."""

    def __init__(self, ports: RolePorts, default: LimitsDocument) -> None:
        self._ports = ports
        self.stored = StoredLimits(ports.store, default)
        self.stored_document: LimitsDocument | None = None
        self.config: CoordinatorConfig = ports.settings.coordinator
        self.follower = LimitsFollower(
            self.stored, ports.feed, self._changed, blocking=ports.io.run
        )

    def _changed(self, document: LimitsDocument) -> None:
        if self.follower.version > 0:  # 0: nothing stored, the default stays in force
            self.stored_document, self.config = document, document.coordinator_config()

    async def change(self, document: LimitsDocument, by: str) -> LimitsChanged:
        """Record new limits (ValueError, recording nothing, if inconsistent): every
        coordinator and API process applies them."""
        document.coordinator_config()  # raises ValueError before anything is recorded
        now = self._ports.clock.now()
        changed = await self._ports.io.ask(self.stored.change, document, by, now)
        await self.follower.refresh()
        return changed

    async def adopt_file(self, path: Path) -> bool:
        """Upgrades: an old limits.json becomes the first change if the store has none."""
        adopted = await self._ports.io.ask(self.stored.adopt_file, path, self._ports.clock.now())
        await self.follower.refresh()
        return adopted


class Operations:
    def __init__(
        self,
        ports: RolePorts,
        runner: RoleRunner,
        letters: DeadLetterManager,
        replays: ReplayService,
        queries: ExecutionQueries,
        default: LimitsDocument | None = None,
    ) -> None:
        self._ports, self._runner, self._queries = ports, runner, queries
        self._letters, self._replays = letters, replays
        self.limits = Limits(ports, default or default_limits(ports.settings.coordinator))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.limits.follower.refresh()
        self._task = asyncio.get_running_loop().create_task(self.limits.follower.run())

    async def stop(self) -> None:
        self.limits.follower.stop()
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._task

    def limits_for(self, user_id: str) -> UserLimits:
        return self.limits.config.limits_for(user_id)

    async def _indexed(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn` in the store thread, after the indexes caught up with the log."""

        def call() -> T:
            self._runner.refresh_indexes(catch_up=True)
            return fn(*args)

        return await self._ports.io.ask(call)

    # -- the queue ------------------------------------------------------------------------

    async def queue_status(self) -> QueueStatus:
        role = self._runner.role("coordinator")
        if role is not None:
            policy = role.coordinator.policy  # type: ignore[attr-defined]
            status: QueueStatus = await self._ports.io.ask(policy.status)
            return status
        counts: Mapping[str, int] = await self._ports.io.ask(self._ports.read_model.counts)
        config = self.limits.config
        return QueueStatus(
            queued=sum(counts.get(s, 0) for s in QUEUED_STATES),
            running=sum(counts.get(s, 0) for s in RUNNING_STATES),
            max_queue=config.max_queue,
            max_running=config.max_running,
            queued_by_user={},
            running_by_user={},
            queued_by_priority={},
        )

    def execution_counts(self) -> Mapping[str, int]:
        """Executions per state, as the read model shows them."""
        return self._ports.read_model.counts()

    async def execution_totals(self) -> tuple[Mapping[str, int], Mapping[str, int]]:
        """Executions per status and per state, awaited from the read model's queries."""
        queries = self._queries
        by_status, by_state = await asyncio.gather(queries.status_counts(), queries.counts())
        return by_status, by_state

    # -- dead letters ---------------------------------------------------------------------

    async def dead_letters(self) -> list[DeadLetter]:
        return await self._indexed(self._letters.letters)

    async def dead_letter(self, letter_id: UUID) -> DeadLetter:
        return await self._indexed(self._letters.get, letter_id)

    async def retry_dead_letter(self, letter_id: UUID, by: str) -> DeadLetter:
        await self._indexed(lambda: None)
        return await self._letters.retry(letter_id, by)

    async def discard_dead_letter(self, letter_id: UUID, by: str, reason: str = "") -> DeadLetter:
        return await self._indexed(self._letters.discard, letter_id, by, reason)

    async def archive_dead_letter(self, letter_id: UUID, by: str) -> DeadLetter:
        return await self._indexed(self._letters.archive, letter_id, by)

    async def dead_letter_backlog(self) -> tuple[tuple[int, BacklogLevel], datetime | None]:
        letters = self._letters
        return await self._indexed(lambda: (letters.backlog(), letters.oldest_open()))

    # -- replays --------------------------------------------------------------------------

    async def create_replay(
        self, admin: str, filters: ReplayFilter, target_topic: str, **options: Any
    ) -> ReplaySession:
        session: ReplaySession = await self._ports.io.ask(
            lambda: self._replays.create(admin, filters, target_topic, **options)
        )
        return session

    async def replay(self, session_id: UUID) -> ReplaySession:
        return await self._indexed(self._replays.get, session_id)

    async def replays(self) -> list[ReplaySession]:
        return await self._indexed(self._replays.sessions)

    async def change_replay(self, session_id: UUID, action: str, by: str) -> ReplaySession:
        """`action`: pause, resume or cancel."""
        if action not in ("pause", "resume", "cancel"):
            raise ValueError(f"action must be pause, resume or cancel, not {action!r}")
        change = getattr(self._replays, action)
        session: ReplaySession = await self._indexed(change, session_id, by)
        return session

    async def log_end(self) -> int:
        """The store's last position (where a replay over everything ends)."""
        return await self._ports.io.ask(self._ports.store.max_position)
