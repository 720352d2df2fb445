"""Supervises one stage in the box from outside: start, limits, live output, deadline, kill."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codeexec.adapters.local_sandbox import boxio
from codeexec.adapters.local_sandbox import rlimits as rl
from codeexec.adapters.local_sandbox.boxprocess import BoxProcess
from codeexec.adapters.local_sandbox.cgroup_run import BelowUsage, RunCgroup
from codeexec.adapters.local_sandbox.launch import Launch
from codeexec.adapters.stage_verdict import StageOutcome
from codeexec.domain.model import Limits, Stream

_DRAIN_TIMEOUT_S = 5.0
_FIND_MAIN_TRIES = 250

OnOutput = Callable[[Stream, bytes], None]


@dataclass(frozen=True)
class StagePlan:
    launch: Launch
    """How the box comes to be (bubblewrap now, or prepared ahead by the zygote)."""
    limits: Limits
    rlimits: Sequence[rl.RLimit]


class Stage:
    """One bubblewrap process tree. `run()` returns once every process of it is gone."""

    def __init__(self, plan: StagePlan, on_output: OnOutput) -> None:
        self.plan = plan
        self.on_output = on_output
        self.outcome = StageOutcome()
        self._box: BoxProcess | None = None
        self.cgroup: RunCgroup | None = None
        self._pidfd: int | None = None
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._handshake_over = False
        self._main_pidfd: int | None = None
        self._closed = False
        self._give_up: asyncio.TimerHandle | None = None

    def kill(self, reason: str) -> None:
        """Kill the whole tree now; the first reason given is the one reported."""
        if self.outcome.killed_for is None:
            self.outcome.killed_for = reason
        self._kill_tree()

    def _kill_tree(self) -> None:
        # SIGKILL to the box's pid 1 makes the kernel kill every process in its pid
        # namespace, stopped ones included; the pidfd cannot hit a recycled pid. Before the
        # handshake there is nothing to kill: the box waits for our go and _supervise kills
        # it then (killing bubblewrap itself now would orphan a box that no one releases).
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        elif self._handshake_over and self._box is not None:
            self._box.kill()
        else:
            return
        if self.cgroup is not None:
            self.cgroup.kill_all()
        if self._give_up is None and self._box is not None:
            # SIGKILL cannot be ignored, but a process stuck in the kernel (uninterruptible
            # sleep) can hold a pipe open: the result must not wait for it forever.
            loop = asyncio.get_running_loop()
            self._give_up = loop.call_later(_DRAIN_TIMEOUT_S, self._box.abandon)

    def _received(self, stream: Stream, data: bytes) -> None:
        out = self.outcome
        kept = out.stdout if stream == "stdout" else out.stderr
        room = self.plan.limits.output_bytes - len(kept)
        if len(data) > room:
            data = data[: max(room, 0)]
            if stream == "stdout":
                out.stdout_truncated = True
            else:
                out.stderr_truncated = True
            self.kill("output")
        if data:
            kept += data
            self.on_output(stream, data)

    def _exited(self) -> None:
        if self._ended_at is None:
            self._ended_at = time.monotonic()
            self.outcome.timeline["exited"] = self._ended_at
        # The main process is gone: nothing it left behind may outlive it.
        self._kill_tree()

    async def run(self) -> StageOutcome:
        launch = self.plan.launch
        timeline = self.outcome.timeline
        timeline["start"] = time.monotonic()
        try:
            box = await launch.open(self._received, self._exited)
        except BaseException:
            launch.close()
            raise
        self._box = box
        timeline["opened"] = time.monotonic()
        try:
            await self._supervise(launch)
        finally:
            launch.close()
            self._kill_tree()
            box.close()
            self._closed = True
            if self._give_up is not None:
                self._give_up.cancel()
            if self._main_pidfd is not None:
                asyncio.get_running_loop().remove_reader(self._main_pidfd)
            for pidfd in (self._pidfd, self._main_pidfd):
                if pidfd is not None:
                    os.close(pidfd)
            timeline["empty"] = time.monotonic()
        return self.outcome

    async def _supervise(self, launch: Launch) -> None:
        failure: OSError | None = None
        try:  # a failure must still end in killing the box
            self.cgroup = launch.cgroup()
        except BelowUsage as exc:
            self.cgroup = exc.cgroup
            self.kill("memory")  # killed below, once its pid 1 is known
        except OSError as exc:
            failure = exc
        child_pid = await launch.init_pid()
        self.outcome.timeline["init"] = time.monotonic()
        try:
            if child_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    self._pidfd = os.pidfd_open(child_pid)
            self._handshake_over = True
            if self._pidfd is None or self.outcome.killed_for is not None or failure:
                self._kill_tree()
            else:
                assert child_pid is not None
                if self.cgroup is not None and not launch.joined:
                    self.cgroup.join(child_pid)
                rl.apply(child_pid, self.plan.rlimits)
                # A code process forked ahead has not inherited them from pid 1.
                code_pid = boxio.child_of(child_pid) if launch.code_forked else child_pid
                if code_pid is None:  # it said the box was ready and is gone (an OOM kill
                    self._kill_tree()  # as the limit was set: see _collect): no go
                else:
                    if code_pid != child_pid:
                        rl.apply(code_pid, self.plan.rlimits)
                    self._started_at = time.monotonic()
                    self.outcome.timeline["limited"] = self._started_at
                    launch.go()  # the box starts the code only now, limits in place
                    self.outcome.timeline["go"] = time.monotonic()
                    self._find_main(child_pid, _FIND_MAIN_TRIES)
        finally:
            launch.close()
        if failure is not None:
            raise failure
        assert self._box is not None
        box = self._box
        watchers = self._start_watchers() if self._started_at is not None else []
        try:
            await box.finished
        finally:
            for watcher in watchers:
                watcher.cancel()
        await self._collect()

    def _find_main(self, init_pid: int, tries: int) -> None:
        # The code's process is pid 1's only child, forked right after the go. Holding a
        # pidfd to it lets the kernel tell us its exact wait status at the end.
        if self._closed:
            return
        pid = boxio.child_of(init_pid)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                self._main_pidfd = os.pidfd_open(pid)
                # Its exit ends the stage: no need to wait for pid 1 and bubblewrap to notice.
                asyncio.get_running_loop().add_reader(self._main_pidfd, self._main_exited)
        elif tries > 0 and self._ended_at is None:
            asyncio.get_running_loop().call_later(0.0002, self._find_main, init_pid, tries - 1)

    def _main_exited(self) -> None:
        if self._main_pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._main_pidfd)
        if self._ended_at is None:
            self._exited()

    def _start_watchers(self) -> list[asyncio.TimerHandle | asyncio.Task[None]]:
        loop = asyncio.get_running_loop()
        watchers: list[asyncio.TimerHandle | asyncio.Task[None]] = [
            loop.call_later(self.plan.limits.wall_time_s, self.kill, "wall")
        ]
        cgroup = self.cgroup
        if cgroup is not None and cgroup.cpu_time_s() is not None:
            watchers.append(asyncio.ensure_future(self._watch_cpu(cgroup)))
        return watchers

    async def _watch_cpu(self, cgroup: RunCgroup) -> None:
        # RLIMIT_CPU counts each process alone; the cgroup counts the whole tree.
        limit = self.plan.limits.cpu_time_s
        interval = min(0.25, max(0.02, limit / 20))
        while True:
            await asyncio.sleep(interval)
            used = cgroup.cpu_time_s()
            if used is not None and used >= limit:
                self.kill("cpu")
                return

    async def _collect(self) -> None:
        out = self.outcome
        assert self._box is not None
        returncode = self._box.returncode
        if self._box.abandoned:
            out.error = (
                f"processes of the box were still alive {_DRAIN_TIMEOUT_S:g} s after SIGKILL"
            )
        elif self._started_at is None:
            if out.killed_for is None and self.cgroup is not None and self.cgroup.oom_kills():
                out.killed_for = "memory"  # the limit, once set, was below the box's usage
            if out.killed_for is None:
                said = bytes(out.stderr).decode("utf-8", "replace").strip()
                out.error = "the box could not be set up: " + (
                    said or self.plan.launch.failure() or "it exited before its go"
                )
        elif (status := self._main_status()) is not None:
            if os.WIFSIGNALED(status):
                out.signal = os.WTERMSIG(status)
            else:
                out.exit_code = os.WEXITSTATUS(status)
        elif returncode is not None:
            if returncode < 0:
                out.signal = -returncode
            elif 128 < returncode <= 128 + 64:
                # Without the exact status (older kernels), read bubblewrap's report the
                # shell way: 128 + n is death by signal n.
                out.signal = returncode - 128
            else:
                out.exit_code = returncode
        if self._started_at is not None:
            end = self._ended_at or time.monotonic()
            out.wall_time_s = round(end - self._started_at, 6)
        cgroup = self.cgroup
        if cgroup is not None:
            out.cpu_time_s = cgroup.cpu_time_s()
            out.memory_bytes = cgroup.peak_memory_bytes()
            out.oom_kills = cgroup.oom_kills()
        out.timeline["collected"] = time.monotonic()
        await self._until_empty(cgroup)

    def _main_status(self) -> int | None:
        if self._main_pidfd is None:
            return None
        asyncio.get_running_loop().remove_reader(self._main_pidfd)
        try:
            return boxio.wait_status(self._main_pidfd)
        finally:
            os.close(self._main_pidfd)
            self._main_pidfd = None

    async def _until_empty(self, cgroup: RunCgroup | None) -> None:
        # The box's pid 1 exits only after the kernel has killed and reaped every other
        # process of its pid namespace: its pidfd turning readable means the tree is gone.
        if self._pidfd is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(boxio.until_readable(self._pidfd), _DRAIN_TIMEOUT_S)
        deadline = time.monotonic() + _DRAIN_TIMEOUT_S
        while cgroup is not None and cgroup.pids() and time.monotonic() < deadline:
            cgroup.kill_all()
            await asyncio.sleep(0.005)
