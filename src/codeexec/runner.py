"""RoleRunner: starts the chosen roles on injected ports, keeps their snapshots, reports health.

The runner restores the retentions of the stateful roles it runs (and the operator indexes
every process keeps) from their snapshots plus the log after them, starts the roles, then
follows the log in the background so that the next start, here or in any process sharing
the store, begins from a recent snapshot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import suppress

from codeexec.builtin_roles import builtin_role
from codeexec.roles import ConsumerRole, Role, RoleHealth, RolePorts
from codeexec.service.consumer import Process
from codeexec.service.dead_letters import DeadLetterManager
from codeexec.service.replays import ReplayService
from codeexec.service.retention import (
    CoordinatorRetention,
    IndexRetention,
    Retention,
    RunsRetention,
    SagaRetention,
)
from codeexec.settings import ALL_ROLES, Settings

log = logging.getLogger(__name__)

START_ORDER = ("projections", "coordinator", "saga", "worker", "dead-letters", "replay", "relay")
"""The relay last: the consumers are in their groups before it publishes. Stopping goes
backwards but for the worker, which stops first (its runs get the shutdown grace while
the others still record what they report)."""

FOLLOW_INTERVAL_S = 1.0
FOLLOW_BUDGET = 20_000  # log events one step of the shadow reads, so it never hogs the store
DEAD_LETTER_INDEX = "dead-letters"
REPLAY_INDEX = "replays"


def retentions(settings: Settings) -> list[Retention]:
    """What this process follows of the log: its stateful roles' state, and the indexes of
    dead letters and replays (kept in every process: the operator API needs them)."""
    found: list[Retention] = [
        IndexRetention(DEAD_LETTER_INDEX, "DeadLetterParked"),
        IndexRetention(REPLAY_INDEX, "ReplayRequested"),
    ]
    config = settings.coordinator
    if "coordinator" in settings.roles:
        windows = [config.default_user_limits.rate_window_s]
        windows += [limits.rate_window_s for limits in config.user_limits.values()]
        found.append(CoordinatorRetention(max(windows)))
    if "saga" in settings.roles:
        found.append(SagaRetention())
    if "worker" in settings.roles:
        found.append(RunsRetention())
    return found


def check_roles(roles: frozenset[str]) -> None:
    unknown = sorted(roles - ALL_ROLES)
    if unknown:
        raise ValueError(
            f"roles: unknown role {', '.join(unknown)} (known: {', '.join(sorted(ALL_ROLES))})"
        )


class RoleRunner:
    def __init__(
        self,
        ports: RolePorts,
        letters: DeadLetterManager,
        replays: ReplayService,
        processes: Sequence[Process] = (),
    ) -> None:
        check_roles(ports.settings.roles)
        self.ports, self.letters, self.replays = ports, letters, replays
        names = [n for n in START_ORDER if n in ports.settings.roles]
        self.roles: dict[str, Role] = {n: builtin_role(n, ports, letters, replays) for n in names}
        for process in processes:  # extra consumers run with the roles' guarantees
            self.roles[process.group] = ConsumerRole(ports, process)
        self._follower: asyncio.Task[None] | None = None
        self._indexed = (-1, -1)

    def role(self, name: str) -> Role | None:
        return self.roles.get(name)

    async def start(self) -> None:
        """Restore the retentions, then start each role (each rebuilds its own state).
        If a role fails to start, those started are stopped and the error raised."""
        await self.ports.io.run(self.ports.shadow.restore)
        await self.ports.io.run(self.refresh_indexes)
        started: list[Role] = []
        try:
            for role in self.roles.values():
                await role.start()
                started.append(role)
        except BaseException:
            for role in reversed(started):
                await role.stop()
            raise
        loop = asyncio.get_running_loop()
        self._follower = loop.create_task(self._follow(), name="snapshots")

    def refresh_indexes(self, catch_up: bool = False) -> None:
        """Fold new dead letters and replay sessions (whoever recorded them) into the
        services' indexes; `catch_up`: read the log to its end first. Store thread."""
        shadow = self.ports.shadow
        if catch_up:
            shadow.advance(names=(DEAD_LETTER_INDEX, REPLAY_INDEX))
        letters, replays = shadow[DEAD_LETTER_INDEX], shadow[REPLAY_INDEX]
        sizes = (len(letters), len(replays))
        if sizes == self._indexed:
            return
        for _, event in letters.events():
            self.letters.fold(event)
        for _, event in replays.events():
            self.replays.fold(event)
        self._indexed = sizes

    def follow_step(self) -> int:
        """One step of following the log (store thread): returns events read."""
        read = self.ports.shadow.advance(FOLLOW_BUDGET)
        self.refresh_indexes()
        return read

    async def _follow(self) -> None:
        while True:
            try:
                read = await self.ports.io.run(self.follow_step)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a busy store: the log is followed next time
                log.warning("snapshots could not follow the log: %s", error)
                read = 0
            if read < FOLLOW_BUDGET:
                await asyncio.sleep(FOLLOW_INTERVAL_S)

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._follower
            self._follower = None
        order = list(self.roles.values())
        worker = self.roles.get("worker")
        if worker is not None:
            order.remove(worker)
            order.append(worker)
        for role in reversed(order):
            try:
                await role.stop()
            except Exception:
                log.exception("role %s did not stop cleanly", role.name)

    def health(self) -> dict[str, RoleHealth]:
        return {name: role.health() for name, role in self.roles.items()}
