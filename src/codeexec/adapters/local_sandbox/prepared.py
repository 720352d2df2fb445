"""One box the zygote forks ahead of its run: namespaces, root, cgroup and work dir ready.

It waits for its program (the go) and is used once: after its stage, every process of it
is killed, its cgroup removed and its work dir with the run."""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence

from codeexec.adapters.local_sandbox import boxio
from codeexec.adapters.local_sandbox.boxprocess import BoxProcess, OnOutput
from codeexec.adapters.local_sandbox.cgroup_run import RunCgroup
from codeexec.adapters.local_sandbox.workspace import Workspace
from codeexec.adapters.local_sandbox.zygote_client import Zygote, pack_fds

_READY_TIMEOUT_S = 10.0
_MARSHAL_VERSION = 4


class PreparedBox:
    """Made by `make()`; a stage then `attach`es to it, awaits `init_pid`, and says `go`."""

    def __init__(
        self, name: str, binds: tuple[str, ...], workspace: Workspace, cgroup: RunCgroup | None
    ) -> None:
        self.name = name
        self.binds = binds
        self.workspace = workspace
        self.cgroup = cgroup
        self.made_at = time.monotonic()
        self._forked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._init: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._outer_pidfd = -1
        self._out_r = self._err_r = -1
        self._control: socket.socket | None = None
        self._ready_wait: asyncio.Future[bytes] | None = None
        self._exit_code: int | None = None
        self._exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._process: BoxProcess | None = None
        self.failure: str | None = None
        self.pooled = False  # taken from the pool: its use tells the pool what runs next
        self.prefault = True  # asked its code's process to copy its pages ahead

    @property
    def ready(self) -> bool:
        """Made, its pid 1 known and in its cgroup, and still alive."""
        return self._init.done() and self._init.result() is not None and self._exit_code is None

    @property
    def dead(self) -> bool:
        return self._exit_code is not None or (self._init.done() and self._init.result() is None)

    async def make(
        self,
        zygote: Zygote,
        ops: Sequence[tuple[str, ...]],
        seccomp: bytes | None,
        prefault: bool = True,
    ) -> None:
        """Ask the zygote for the box and wait until its pid 1 is in its cgroup.
        `prefault`: its code's process copies its pages ahead, for Python in the zygote."""
        theirs: list[int] = []
        try:
            self._out_r, out_w = os.pipe2(os.O_CLOEXEC)
            theirs.append(out_w)
            self._err_r, err_w = os.pipe2(os.O_CLOEXEC)
            theirs.append(err_w)
            self._control, box_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            theirs.append(box_end.detach())
            request = {
                "ops": [list(op) for op in ops],
                "hostname": "sandbox",
                "seccomp": seccomp,
                "prefault": prefault,
            }
            try:
                pid, self._outer_pidfd = await zygote.fork_box(request, theirs, self._outer_exited)
            finally:
                for fd in theirs:
                    os.close(fd)
            self._forked.set_result(None)
            if self.cgroup is not None:
                self.cgroup.join(pid)
            # Its pid 1 forks the code's process only after this: inside the cgroup.
            self._control.send(b"joined")
            # Its root built (a box that failed to build it says why on stderr, and exits).
            control = self._control
            control.setblocking(False)
            # Kept so that a destroy meanwhile (close_control) ends the wait at once.
            self._ready_wait = asyncio.ensure_future(
                asyncio.get_running_loop().sock_recv(control, 16)
            )
            ready = await asyncio.wait_for(self._ready_wait, _READY_TIMEOUT_S)
            control.setblocking(True)
            self._init.set_result(pid if ready == b"ready" else None)
        except BaseException as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            if not self._forked.done():
                self._forked.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            if not self._init.done():
                self._init.set_result(None)
            if not isinstance(exc, Exception):
                raise

    def _outer_exited(self, code: int) -> None:
        self._exit_code = code
        if not self._exited.done():
            self._exited.set_result(None)
        if self._process is not None:
            self._process.exited(code)
        if not self._init.done():
            self._init.set_result(None)

    async def attach(self, on_output: OnOutput, on_exit: Callable[[], None]) -> BoxProcess:
        """The box's outer process for the stage that uses it; its output flows from now."""
        await self._forked
        process = BoxProcess(self._outer_pidfd, self._out_r, self._err_r, on_output, on_exit)
        self._process = process
        if self._exit_code is not None:
            process.exited(self._exit_code)
        return process

    async def init_pid(self) -> int | None:
        return await self._init

    def go(self, program: Mapping[str, object], stdin: int | None) -> None:
        assert self._control is not None
        fds = [stdin] if stdin is not None else []
        data = marshal.dumps(dict(program), _MARSHAL_VERSION)
        self._control.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, pack_fds(fds))])

    def close_control(self) -> None:
        """Closing it unsent makes the box exit without running anything."""
        if self._ready_wait is not None and not self._ready_wait.done():
            self._ready_wait.cancel()  # before the socket it reads is closed
        if self._control is not None:
            self._control.close()
            self._control = None

    async def destroy(self) -> None:
        """For a box no stage took: kill it, wait until it is gone, release its cgroup."""
        self.close_control()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._forked
        if self._process is None and self._outer_pidfd >= 0:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._outer_pidfd, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), 5)
            for fd in (self._outer_pidfd, self._out_r, self._err_r):
                os.close(fd)
            self._outer_pidfd = self._out_r = self._err_r = -1
        if self.cgroup is not None:
            deadline = time.monotonic() + 5
            while self.cgroup.pids() and time.monotonic() < deadline:
                self.cgroup.kill_all()
                await asyncio.sleep(0.005)
            self.cgroup.remove()

    def early_error(self) -> str:
        """What the box wrote before anyone took it (why it failed to build its root)."""
        if self._err_r < 0 or self._process is not None:
            return ""
        os.set_blocking(self._err_r, False)
        try:
            return os.read(self._err_r, 4096).decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def memory_pids(self) -> list[int]:
        """The processes of the box that hold memory while it waits (for reports): its pid 1
        and the code's process forked ahead."""
        init = self._init.result() if self._init.done() else None
        if init is None or self._exit_code is not None:
            return []
        code = boxio.child_of(init)
        return [init] if code is None else [init, code]
