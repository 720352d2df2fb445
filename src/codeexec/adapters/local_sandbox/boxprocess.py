"""A box's outer process on the host: its output pipes and exit, watched by the event loop.

The outer process is bubblewrap (spawned here with one vfork+exec: asyncio's subprocess
transport costs about 3 ms per spawn, with a watcher thread per child) or the zygote's C1,
whose exit status the zygote reports. Either way it is killed through a pidfd, which cannot
hit a recycled pid."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence

from codeexec.domain.model import Stream

_READ_SIZE = 1 << 16

OnOutput = Callable[[Stream, bytes], None]


class BoxProcess:
    """Calls `on_output` per chunk read and `on_exit` when the outer process exits;
    `finished` resolves once it has exited and both pipes reached end of file."""

    def __init__(
        self, pidfd: int, stdout: int, stderr: int, on_output: OnOutput, on_exit: Callable[[], None]
    ) -> None:
        self._pidfd = pidfd
        self._on_output = on_output
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()
        self.finished: asyncio.Future[None] = self._loop.create_future()
        self.abandoned = False
        self.returncode: int | None = None
        self._streams: dict[int, Stream] = {stdout: "stdout", stderr: "stderr"}
        self._open = set(self._streams)
        for fd in self._streams:
            os.set_blocking(fd, False)
            self._loop.add_reader(fd, self._readable, fd)

    def kill(self) -> None:
        if self.returncode is None:
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

    def exited(self, returncode: int) -> None:
        """The outer process is gone, with this exit code (negative: killed by that signal)."""
        if self.returncode is not None:
            return
        self.returncode = returncode
        self._on_exit()
        self._maybe_finished()

    def _maybe_finished(self) -> None:
        if not self._open and self.returncode is not None and not self.finished.done():
            self.finished.set_result(None)

    def close(self) -> None:
        for fd in self._open:
            self._loop.remove_reader(fd)
        self._open.clear()
        self.kill()
        os.close(self._pidfd)
        for fd in self._streams:
            os.close(fd)


class SpawnedBoxProcess(BoxProcess):
    """bubblewrap, our own child: its pidfd turning readable means we can reap it."""

    def __init__(
        self, proc: subprocess.Popen[bytes], on_output: OnOutput, on_exit: Callable[[], None]
    ) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self._proc = proc
        super().__init__(
            os.pidfd_open(proc.pid),
            proc.stdout.fileno(),
            proc.stderr.fileno(),
            on_output,
            on_exit,
        )
        self._loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        self._loop.remove_reader(self._pidfd)
        self.exited(self._proc.wait())  # returns at once: the pidfd said it has exited

    def close(self) -> None:
        if self.returncode is None:
            self._loop.remove_reader(self._pidfd)
            self.kill()
            self._proc.wait()
        for fd in self._open:
            self._loop.remove_reader(fd)
        self._open.clear()
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
    on_output: OnOutput,
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
    return SpawnedBoxProcess(proc, on_output, on_exit)
