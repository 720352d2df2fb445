"""Boxes prepared ahead of demand: as many as recent runs needed at once, within a bound.

A box is taken once and never returns: the pool only ever hands out boxes no code ran in.
A box's replacement is made when its run ends (or at once, when a run found none waiting);
boxes idle beyond the demand are destroyed.

A box's code process copies its pages ahead (`prefault`) only while most recent boxes taken
ran Python in the zygote: a runtime it execs (Node, a compiler, a compiled program) discards
those pages, and copying them cost those runs 3-7 ms of CPU each for nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from codeexec.adapters.local_sandbox import ownership
from codeexec.adapters.local_sandbox.cgroup_run import RunCgroup
from codeexec.adapters.local_sandbox.prepared import PreparedBox
from codeexec.adapters.local_sandbox.workspace import Workspace
from codeexec.adapters.local_sandbox.zygote_client import Zygote

log = logging.getLogger(__name__)

OpsFor = Callable[[Workspace, tuple[str, ...]], Sequence[tuple[str, ...]]]
RECENT_USES = 32  # uses of taken boxes the prefault decision looks at


class BoxPool:
    """Prepared boxes per set of runtime binds (one set on most hosts: every runtime in /usr)."""

    def __init__(
        self,
        zygote: Zygote,
        *,
        make_workspace: Callable[[str], Workspace],
        make_cgroup: Callable[[str], RunCgroup | None],
        ops_for: OpsFor,
        seccomp: bytes | None,
        size: int,
        window_s: float = 30.0,
    ) -> None:
        self.zygote = zygote
        self._make_workspace = make_workspace
        self._make_cgroup = make_cgroup
        self._ops_for = ops_for
        self._seccomp = seccomp
        self.size = size
        """At most this many boxes wait, per set of binds."""
        self.window_s = window_s
        self._waiting: dict[tuple[str, ...], list[PreparedBox]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_use = 0
        self._peak = 0
        self._peak_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.taken = 0
        self.misses = 0
        self._recent: deque[bool] = deque(maxlen=RECENT_USES)  # ran Python in the zygote

    def take(self, binds: tuple[str, ...]) -> PreparedBox:
        """A box for a run's first stage: a waiting one if any, else one made now."""
        self._note_use(+1)
        self.taken += 1
        waiting = self._waiting.get(binds, [])
        box = None
        while waiting:
            candidate = waiting.pop(0)
            if candidate.dead:
                self._destroy(candidate, remove_workspace=True)
                continue
            box = candidate
            break
        if box is None:
            self.misses += 1
            box = self._start(binds, None, self.prefault)
            self._refill(binds)  # demand outran the boxes waiting: make more at once
        box.pooled = True
        return box

    def make_for(
        self, workspace: Workspace, binds: tuple[str, ...], *, prefault: bool = False
    ) -> PreparedBox:
        """A box on an existing work dir (the run stage after a compile), made now."""
        self._note_use(+1)
        return self._start(binds, workspace, prefault)

    def used(self, box: PreparedBox, in_zygote: bool) -> None:
        """A stage runs in `box`, Python in the zygote or not: boxes taken from the pool
        tell it whether the boxes it makes next should copy their pages ahead."""
        if box.pooled:
            self._recent.append(in_zygote)

    @property
    def prefault(self) -> bool:
        """Whether most recent boxes taken ran Python in the zygote (yes before any)."""
        return 2 * sum(self._recent) >= len(self._recent)

    def done(self, binds: tuple[str, ...] | None = None) -> None:
        """A box taken from the pool has ended its stage; the pool is refilled for its
        `binds` now. Making a box (a fork, its root, its pages: several ms of CPU) while a
        run is going would take a core from that run's code; between runs it does not."""
        self._note_use(-1)
        if binds is not None:
            self._refill(binds)

    def _note_use(self, delta: int) -> None:
        self._in_use += delta
        now = time.monotonic()
        if self._in_use >= self._peak or now - self._peak_at > self.window_s:
            self._peak, self._peak_at = self._in_use, now

    def target(self) -> int:
        """How many boxes should wait: the most runs seen at once lately (at least one)."""
        if time.monotonic() - self._peak_at > self.window_s:
            self._peak, self._peak_at = self._in_use, time.monotonic()
        return max(1, min(self.size, self._peak))

    def _start(
        self, binds: tuple[str, ...], workspace: Workspace | None, prefault: bool
    ) -> PreparedBox:
        name = ownership.new_id()
        workspace = workspace or self._make_workspace(name)
        try:
            cgroup = self._make_cgroup(f"{name}.box")
        except BaseException:
            workspace.remove()
            raise
        box = PreparedBox(name, binds, workspace, cgroup)
        box.prefault = prefault
        ops = self._ops_for(workspace, binds)
        task = asyncio.ensure_future(box.make(self.zygote, ops, self._seccomp, prefault))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return box

    def prepare(self, binds: tuple[str, ...] = ()) -> None:
        """Fill the pool for these binds up to its target (at start-up: one box)."""
        self._refill(binds)

    def _refill(self, binds: tuple[str, ...]) -> None:
        if self._closed or self.size <= 0 or not self.zygote.alive:
            return
        waiting = self._waiting.setdefault(binds, [])
        while len(waiting) < self.target():
            try:
                waiting.append(self._start(binds, None, self.prefault))
            except OSError as exc:  # no room for a work dir or cgroup now: try at the next take
                log.warning("could not prepare a sandbox box: %s", exc)
                break
        self._schedule_trim()

    def _schedule_trim(self) -> None:
        if self._timer is None and any(self._waiting.values()):
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.window_s / 2, self._trim)

    def _trim(self) -> None:
        """Destroy boxes beyond the demand, and any that died while waiting."""
        self._timer = None
        target = self.target()
        for waiting in self._waiting.values():
            for box in [b for b in waiting if b.dead]:
                waiting.remove(box)
                self._destroy(box, remove_workspace=True)
            while len(waiting) > target:
                self._destroy(waiting.pop(), remove_workspace=True)
        self._schedule_trim()

    def _destroy(self, box: PreparedBox, *, remove_workspace: bool) -> None:
        async def destroy() -> None:
            await box.destroy()
            if remove_workspace:
                await asyncio.get_running_loop().run_in_executor(None, box.workspace.remove)

        task = asyncio.ensure_future(destroy())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def waiting(self) -> list[PreparedBox]:
        return [box for boxes in self._waiting.values() for box in boxes]

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for box in self.waiting():
            self._destroy(box, remove_workspace=True)
        self._waiting.clear()
        while self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
