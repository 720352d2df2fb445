"""The zygote, seen from the server: start it, ask it for boxes, hear their outer processes exit.

The zygote is the toolchain's Python started exactly as a cold run starts it, which stops in
`site` to serve requests (see zygote/sitecustomize.py). It runs as root on the host, holds
nothing but a fresh interpreter, and never runs user code: each box is a fork of it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from codeexec.adapters.local_sandbox.recipes import BOX
from codeexec.ports.sandbox import SandboxError

log = logging.getLogger(__name__)

ZYGOTE_DIR = str(Path(__file__).with_name("zygote"))
MAIN = f"{BOX}/main.py"
"""The script a cold Python run starts: the zygote is started with it too (see recipes.py)."""
_MAX_FDS = 8
_MARSHAL_VERSION = 4  # read by the zygote's interpreter, which may be another Python 3


class ZygoteGone(SandboxError):
    """The zygote died or could not start."""


def zygote_environment(env: Mapping[str, str]) -> dict[str, str]:
    """A cold run's environment (bubblewrap adds PWD), plus where to find the zygote."""
    return {**env, "PWD": BOX, "PYTHONPATH": ZYGOTE_DIR}


class Zygote:
    """One zygote process and its control socket (a SOCK_SEQPACKET pair: one message per
    request or report, file descriptors passed along)."""

    def __init__(self, python: str, env: Mapping[str, str]) -> None:
        self.python = python
        self.env = dict(env)
        """The environment of the code it runs in-process (without PWD and PYTHONPATH)."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._log_fd: int | None = None
        self._tag = 0
        self._pending: dict[int, tuple[asyncio.Future[tuple[int, int]], Callable[[int], None]]] = {}
        self._on_exit: dict[int, Callable[[int], None]] = {}
        self._ready: asyncio.Future[None] | None = None
        self.forks = 0

    @property
    def alive(self) -> bool:
        return self._sock is not None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        if self._sock is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log_r, log_w = os.pipe2(os.O_CLOEXEC)
        try:
            # stdin, stdout and stderr of the kinds a run's are (/dev/null or a file; pipes):
            # the interpreter sets up sys.stdin/stdout/stderr for them before we fork.
            self._proc = subprocess.Popen(
                [self.python, MAIN],
                stdin=subprocess.DEVNULL,
                stdout=log_w,
                stderr=log_w,
                pass_fds=(theirs.fileno(),),
                env=zygote_environment(self.env),
                cwd="/",
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            os.close(log_r)
            raise ZygoteGone(f"could not start the zygote {self.python}: {exc}") from exc
        finally:
            theirs.close()
            os.close(log_w)
        ours.setblocking(False)
        self._sock = ours
        self._log_fd = log_r
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._readable)
        os.set_blocking(log_r, False)
        loop.add_reader(log_r, self._log)

    async def started(self, timeout: float = 10.0) -> None:
        """Wait until the zygote serves (its interpreter started and imported what it needs)."""
        if self._ready is None:
            raise ZygoteGone("the zygote was not started")
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            self._gone(f"the zygote did not start within {timeout:g} s")
            raise ZygoteGone(f"the zygote {self.python} did not start") from None

    async def fork_box(
        self, request: Mapping[str, object], fds: list[int], on_exit: Callable[[int], None]
    ) -> tuple[int, int]:
        """Ask for a box; returns the pid of its outer process and a pidfd to it. `on_exit`
        gets that process's exit code (negative: the signal that killed it)."""
        if self._sock is None:
            raise ZygoteGone("the zygote is not running")
        self._tag += 1
        tag = self._tag
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self._pending[tag] = (future, on_exit)
        data = marshal.dumps({**request, "tag": tag}, _MARSHAL_VERSION)
        try:
            self._sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, pack_fds(fds))])
        except OSError as exc:
            del self._pending[tag]
            raise ZygoteGone(f"the zygote refused a request: {exc}") from exc
        result = await future
        self.forks += 1
        return result

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data, ancdata, _, _ = self._sock.recvmsg(1 << 16, socket.CMSG_SPACE(4 * _MAX_FDS))
            except BlockingIOError:
                return
            except OSError:
                data, ancdata = b"", []
            if not data:
                self._gone("the zygote exited")
                return
            fds = _unpack(ancdata)
            message = marshal.loads(data)
            if "ready" in message:
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
            elif "tag" in message:
                future, on_exit = self._pending.pop(message["tag"], (None, None))
                if "error" in message and future is not None and not future.done():
                    future.set_exception(ZygoteGone(f"the zygote: {message['error']}"))
                elif future is not None and on_exit is not None and not future.done():
                    # Registered before any later message is read: its exit comes after.
                    self._on_exit[message["pid"]] = on_exit
                    future.set_result((message["pid"], fds[0]))
                else:
                    for fd in fds:
                        os.close(fd)
            elif "exited" in message:
                callback = self._on_exit.pop(message["exited"], None)
                if callback is not None:
                    callback(os.waitstatus_to_exitcode(message["status"]))

    def _log(self) -> None:
        assert self._log_fd is not None
        with contextlib.suppress(BlockingIOError):
            text = os.read(self._log_fd, 1 << 16)
            if text:
                log.warning("zygote: %s", text.decode("utf-8", "replace").rstrip())
                return
        self._stop_log()

    def _stop_log(self) -> None:
        if self._log_fd is not None:
            asyncio.get_running_loop().remove_reader(self._log_fd)
            os.close(self._log_fd)
            self._log_fd = None

    def _gone(self, why: str) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(ZygoteGone(why))
        self._pending.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ZygoteGone(why))
            self._ready.exception()  # retrieved: nobody may be waiting
        # Its boxes die with it (they are bound to their parent); their exits go unreported.
        exits, self._on_exit = self._on_exit, {}
        for callback in exits.values():
            callback(-signal.SIGKILL)
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)

    def close(self) -> None:
        self._gone("the sandbox closed")
        self._stop_log()
        self._proc = None


def pack_fds(fds: list[int]) -> bytes:
    return b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)


def _unpack(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, usable, 4)]
    return fds
