"""The fast start: boxes forked from a pre-initialised interpreter, prepared ahead of demand.

A cold stage spawns bubblewrap, which builds the box, then execs setpriv, which execs the
runtime, which initialises from scratch: about 30 ms of CPU for a Python hello world here.
The zygote builds the same box by forking (see zygote/), and a Python run's interpreter is
the zygote's own, initialised once and forked into each box (the run's `python3
/box/main.py` goes on exactly where a cold start would be when it reaches `site`'s
sitecustomize). Other languages, and Python runs that differ from the zygote's start (another
interpreter, another entry file), exec their runtime in the same kind of box."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from codeexec.adapters.local_sandbox import ownership
from codeexec.adapters.local_sandbox.boxcommand import environment, identity_files
from codeexec.adapters.local_sandbox.boxpool import BoxPool, OpsFor
from codeexec.adapters.local_sandbox.cgroup_run import RunCgroup
from codeexec.adapters.local_sandbox.prepared import PreparedBox
from codeexec.adapters.local_sandbox.recipes import BOX, Toolchain
from codeexec.adapters.local_sandbox.workspace import Workspace
from codeexec.adapters.local_sandbox.zygote_client import MAIN, Zygote, ZygoteGone

USER_SITE_PREFIX = ".local/"
"""A run shipping its own user site-packages needs a cold start: `site` looks for it early."""


def zygote_toolchain(toolchains: Sequence[Toolchain]) -> Toolchain | None:
    """The Python whose interpreter becomes the zygote: the host's default one."""
    return next((tc for tc in toolchains if tc.recipe.name == "python"), None)


class FastStart:
    """Owns the zygote and the pool of prepared boxes of one sandbox instance."""

    def __init__(
        self,
        *,
        make_workspace: Callable[[str], Workspace],
        make_cgroup: Callable[[str], RunCgroup | None],
        ops_for: OpsFor,
        seccomp: bytes | None,
        pool_size: int,
    ) -> None:
        self._make_workspace = make_workspace
        self._make_cgroup = make_cgroup
        self._ops_for = ops_for
        self._seccomp = seccomp
        self._pool_size = pool_size
        self.zygote: Zygote | None = None
        self.pool: BoxPool | None = None
        self.python: Toolchain | None = None
        self._retired: set[asyncio.Future[None]] = set()

    async def start(self, toolchains: Sequence[Toolchain]) -> None:
        """Start the zygote (with the host's Python, else our own interpreter) and make a
        first box; raises ZygoteGone (saying why) if either cannot be had on this host."""
        if self.zygote is not None and self.zygote.alive:
            return
        if self.pool is not None:  # a zygote that died: its boxes died with it
            old, self.pool = self.pool, None
            self._retired.add(asyncio.ensure_future(old.close()))
        self.python = zygote_toolchain(toolchains)
        if self.python is not None:
            python, env = self.python.tools["run"], environment(self.python)
        else:
            python, env = sys.executable, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        self.zygote = Zygote(python, env)
        self.zygote.start()
        await self.zygote.started()
        self.pool = BoxPool(
            self.zygote,
            make_workspace=self._make_workspace,
            make_cgroup=self._make_cgroup,
            ops_for=self._ops_for,
            seccomp=self._seccomp,
            size=self._pool_size,
        )
        first = self.pool.make_for(self._make_workspace(ownership.new_id()), ())
        try:
            if await first.init_pid() is None:
                why = first.early_error() or first.failure or "it exited"
                raise ZygoteGone(f"a box could not be made here: {why}")
        finally:
            await first.destroy()
            first.workspace.remove()
            self.pool.done()
        self.pool.prepare(())

    @property
    def running(self) -> bool:
        return self.zygote is not None and self.zygote.alive and self.pool is not None

    def take(self, binds: tuple[str, ...]) -> PreparedBox:
        assert self.pool is not None
        return self.pool.take(binds)

    def make_for(
        self, workspace: Workspace, binds: tuple[str, ...], *, prefault: bool = False
    ) -> PreparedBox:
        assert self.pool is not None
        return self.pool.make_for(workspace, binds, prefault=prefault)

    def used(self, box: PreparedBox, in_zygote: bool) -> None:
        if self.pool is not None:
            self.pool.used(box, in_zygote)

    def done(self, binds: tuple[str, ...] | None = None) -> None:
        if self.pool is not None:
            self.pool.done(binds)

    def program(
        self,
        *,
        stage: str,
        toolchain: Toolchain,
        argv: list[str],
        uid: int,
        files: Sequence[str],
    ) -> dict[str, object]:
        """What the box's go says: who runs, what, and how (in the zygote, or by exec)."""
        env = environment(toolchain)
        shown_env = [os.fsencode(f"{k}={v}") for k, v in {**env, "PWD": BOX}.items()]
        in_zygote = (
            self.python is not None
            and self.zygote is not None
            and stage == "run"
            and argv[:2] == [self.zygote.python, MAIN]
            and env == self.zygote.env
            and not any(name.startswith(USER_SITE_PREFIX) for name in files)
        )
        return {
            "mode": "python" if in_zygote else "exec",
            "argv": argv,
            "args": argv[2:] if in_zygote else [],
            "env": shown_env,
            "uid": uid,
            "data": dict(identity_files(uid)),
        }

    def memory_pids(self) -> list[int]:
        """The zygote and every waiting box's processes (for memory reports)."""
        pids = [] if self.zygote is None or self.zygote.pid is None else [self.zygote.pid]
        if self.pool is not None:
            for box in self.pool.waiting():
                pids += box.memory_pids()
        return pids

    async def close(self) -> None:
        if self._retired:
            await asyncio.gather(*self._retired, return_exceptions=True)
            self._retired.clear()
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
        if self.zygote is not None:
            with contextlib.suppress(Exception):
                self.zygote.close()
            self.zygote = None

    def describe(self) -> Mapping[str, object]:
        pool = self.pool
        return {
            "zygote": None if self.zygote is None else self.zygote.python,
            "pool_size": self._pool_size,
            "waiting": 0 if pool is None else len(pool.waiting()),
            "taken": 0 if pool is None else pool.taken,
            "misses": 0 if pool is None else pool.misses,
        }
