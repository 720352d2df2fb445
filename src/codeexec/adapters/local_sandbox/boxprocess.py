"""The bubblewrap process on the host: spawned directly, its pipes and exit watched by the loop.

asyncio's subprocess transport costs about 3 ms per spawn here (transports, a watcher
thread per child); this does the same with one vfork+exec, two readers and a pidfd."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence

from codeexec.domain.model import Stream

_READ_SIZE = 1 << 16


class BoxProcess:
    """Started by `spawn`; calls `on_output` per chunk read and `on_exit` when bubblewrap
    exits; `finished` resolves once it has exited and both pipes reached end of file."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        on_output: Callable[[Stream, bytes], None],
        on_exit: Callable[[], None],
    ) -> None:
        self._proc = proc
        self._on_output = on_output
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()
        self.finished: asyncio.Future[None] = self._loop.create_future()
        self.abandoned = False
        self._pidfd = os.pidfd_open(proc.pid)
        assert proc.stdout is not None and proc.stderr is not None
        self._streams: dict[int, Stream] = {
            proc.stdout.fileno(): "stdout",
            proc.stderr.fileno(): "stderr",
        }
        self._open = set(self._streams)
        for fd in self._streams:
            os.set_blocking(fd, False)
            self._loop.add_reader(fd, self._readable, fd)
        self._loop.add_reader(self._pidfd, self._exited)

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def kill(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def abandon(self) -> None:
        """Stop waiting for the end (something of the box would not die)."""
        if not self.finished.done():
            self.abandoned = True
            self.finished.set_result(None)

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        if data:
            self._on_output(self._streams[fd], data)
            return
        self._loop.remove_reader(fd)
        self._open.discard(fd)
        self._maybe_finished()

    def _exited(self) -> None:
        self._loop.remove_reader(self._pidfd)
        self._proc.wait()  # reaps it; returns at once, the pidfd said it has exited
        self._on_exit()
        self._maybe_finished()

    def _maybe_finished(self) -> None:
        if not self._open and self._proc.returncode is not None and not self.finished.done():
            self.finished.set_result(None)

    def close(self) -> None:
        for fd in self._open:
            self._loop.remove_reader(fd)
        if self._proc.returncode is None:
            self._loop.remove_reader(self._pidfd)
            self.kill()
            self._proc.wait()
        os.close(self._pidfd)
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._proc.stdout.close()
        self._proc.stderr.close()


def spawn(
    argv: Sequence[str],
    *,
    stdin: int,
    pass_fds: Sequence[int],
    env: Mapping[str, str],
    on_output: Callable[[Stream, bytes], None],
    on_exit: Callable[[], None],
    cwd: str = "/",
    umask: int = -1,
) -> BoxProcess:
    proc = subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=pass_fds,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        umask=umask,
    )
    return BoxProcess(proc, on_output, on_exit)
