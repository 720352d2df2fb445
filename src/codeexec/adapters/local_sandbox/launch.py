"""How a stage's box comes to be: spawned now by bubblewrap, or taken ready from the zygote.

Either way the box reports its pid 1 and then waits: the supervisor puts the limits in
place and only then lets the code start (`go`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping

from codeexec.adapters.local_sandbox import boxio
from codeexec.adapters.local_sandbox.boxcommand import BoxFiles, split_options
from codeexec.adapters.local_sandbox.boxprocess import BoxProcess, OnOutput, spawn
from codeexec.adapters.local_sandbox.cgroup_run import RunCgroup
from codeexec.adapters.local_sandbox.prepared import PreparedBox
from codeexec.domain.model import Limits

HANDSHAKE_TIMEOUT_S = 10.0
BOX_UMASK = 0o077
"""What the code creates is its own uid's alone, whatever the server's umask is."""


class Launch(ABC):
    joined = False
    """Whether the box's pid 1 is in the stage's cgroup already."""
    code_forked = False
    """Whether the code's process (pid 1's child) exists before the go: it then needs the
    stage's rlimits of its own, since it did not inherit them from pid 1."""

    @abstractmethod
    async def open(self, on_output: OnOutput, on_exit: Callable[[], None]) -> BoxProcess:
        """The box's outer process, its output already flowing to `on_output`."""

    @abstractmethod
    def cgroup(self) -> RunCgroup | None:
        """The stage's cgroup with its limits set (OSError if it cannot be had)."""

    @abstractmethod
    async def init_pid(self) -> int | None:
        """The host pid of the box's pid 1; None if the box failed before (stderr says why)."""

    @abstractmethod
    def go(self) -> None:
        """Limits are in place: let the code start."""

    @abstractmethod
    def close(self) -> None:
        """Release what the handshake used; a box never told to go then stays blocked."""

    def failure(self) -> str | None:
        """Why the box could not be made, when its own output does not say."""
        return None


class BwrapLaunch(Launch):
    """A bubblewrap process spawned now, blocked on a pipe until the go."""

    def __init__(
        self,
        argv_for: Callable[[BoxFiles], list[str]],
        env: Mapping[str, str],
        stdin: bytes,
        data: Mapping[str, bytes],
        make_cgroup: Callable[[], RunCgroup] | None,
    ) -> None:
        self._argv_for = argv_for
        self._env = env
        self._stdin = stdin
        self._data = data
        self._make_cgroup = make_cgroup
        self._info_r = -1
        self._block_w = -1

    async def open(self, on_output: OnOutput, on_exit: Callable[[], None]) -> BoxProcess:
        child_side: list[int] = []
        try:
            self._info_r, info_w = os.pipe2(os.O_CLOEXEC)
            child_side.append(info_w)
            block_r, self._block_w = os.pipe2(os.O_CLOEXEC)
            child_side.append(block_r)
            # The box also holds the write end (as its --sync-fd), so its read of the block
            # pipe can never end in EOF: if this process dies before saying go, the box
            # stays blocked, and no code ever runs without its limits.
            hold = os.dup(self._block_w)
            child_side.append(hold)
            data = {name: boxio.pipe_with(content) for name, content in self._data.items()}
            child_side += data.values()
            stdin: int = subprocess.DEVNULL
            if self._stdin:
                stdin = boxio.stdin_file(self._stdin)
                child_side.append(stdin)
            fds = BoxFiles(
                info=info_w,
                block=block_r,
                hold=hold,
                passwd=data["passwd"],
                group=data["group"],
                seccomp=data.get("seccomp"),
            )
            bwrap, options, command = split_options(self._argv_for(fds))
            args = boxio.stdin_file(options, "options")
            child_side.append(args)
            return spawn(
                [bwrap, "--args", str(args), "--", *command],
                stdin=stdin,
                pass_fds=(*fds.all(), args),
                env=self._env,
                umask=BOX_UMASK,
                on_output=on_output,
                on_exit=on_exit,
            )
        except BaseException:
            self.close()
            raise
        finally:
            for fd in child_side:
                os.close(fd)

    def cgroup(self) -> RunCgroup | None:
        # Made while bubblewrap starts, which it does not need.
        return None if self._make_cgroup is None else self._make_cgroup()

    async def init_pid(self) -> int | None:
        try:
            return await asyncio.wait_for(boxio.read_child_pid(self._info_r), HANDSHAKE_TIMEOUT_S)
        except (TimeoutError, ValueError):
            return None  # bubblewrap failed before making the box; stderr says why
        finally:
            os.close(self._info_r)
            self._info_r = -1

    def go(self) -> None:
        os.write(self._block_w, b"go")

    def close(self) -> None:
        for fd in (self._info_r, self._block_w):
            if fd >= 0:
                os.close(fd)
        self._info_r = self._block_w = -1


class PreparedLaunch(Launch):
    """A box the zygote forked ahead: root built, cgroup joined, waiting for its program."""

    joined = True
    code_forked = True

    def __init__(
        self, box: PreparedBox, program: Mapping[str, object], stdin: bytes, limits: Limits
    ) -> None:
        self.box = box
        self._program = program
        self._stdin = stdin
        self._limits = limits

    async def open(self, on_output: OnOutput, on_exit: Callable[[], None]) -> BoxProcess:
        return await self.box.attach(on_output, on_exit)

    def cgroup(self) -> RunCgroup | None:
        cgroup = self.box.cgroup
        if cgroup is not None:
            cgroup.limit(self._limits)
        return cgroup

    async def init_pid(self) -> int | None:
        return await self.box.init_pid()

    def go(self) -> None:
        if self.box.cgroup is not None:
            self.box.cgroup.start_accounting()
        stdin = boxio.stdin_file(self._stdin) if self._stdin else None
        try:
            self.box.go(self._program, stdin)
        finally:
            if stdin is not None:
                os.close(stdin)

    def close(self) -> None:
        self.box.close_control()

    def failure(self) -> str | None:
        return self.box.failure
