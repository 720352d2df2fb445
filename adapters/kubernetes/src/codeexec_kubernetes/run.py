"""One run in one pod: wait for it to start, stream its log, judge its end, always delete it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from codeexec.adapters.live_output import LiveOutput
from codeexec.domain.model import RunResult, RunSpec, SandboxStatus
from codeexec.ports.sandbox import OutputChunk, SandboxRun
from codeexec_kubernetes.api import KubeApi, delete_run
from codeexec_kubernetes.frames import OutputFrame
from codeexec_kubernetes.logs import LogFollower
from codeexec_kubernetes.podstate import PodState, read_pod
from codeexec_kubernetes.settings import KubernetesSettings
from codeexec_kubernetes.verdict import judge

log = logging.getLogger(__name__)

REPORT_WAIT_S = 10.0
"""After the end frame, how long the container's terminated state may take to show; after
the container's end, how long its log stream may stay silent before it is read again."""
OVERDUE_MARGIN_S = 15.0
"""Past the pod's activeDeadlineSeconds, how long the kubelet gets to report before the
run stops waiting and deletes the pod itself."""


class KubernetesRun(SandboxRun):
    """Live output for any number of readers; a result that is never an exception."""

    def __init__(
        self,
        sandbox_id: str,
        spec: RunSpec,
        api: KubeApi,
        settings: KubernetesSettings,
        deadline_s: float,
        on_end: Callable[[], None],
        config_maps: Sequence[str],
    ) -> None:
        """`config_maps`: the run's, the head's first (deleted last)."""
        self.sandbox_id = sandbox_id
        self.spec = spec
        self.api = api
        self.settings = settings
        self.deadline_s = deadline_s + OVERDUE_MARGIN_S
        self._on_end = on_end
        self.config_maps = tuple(config_maps)
        self._output = LiveOutput()
        loop = asyncio.get_running_loop()
        self._result: asyncio.Future[RunResult] = loop.create_future()
        self._changed = asyncio.Event()
        self._container_ended = asyncio.Event()
        self.pod = PodState()
        self.gone = False
        self.cancelled = False
        self._sizes: dict[tuple[str, str], int] = {}
        self._truncated = {"stdout": False, "stderr": False}
        self._output_exceeded = False
        self._compile_output = bytearray()
        self._stdout, self._stderr = bytearray(), bytearray()
        self.follower = LogFollower(api, sandbox_id, self._frame, self._container_ended)
        self._task: asyncio.Task[None] | None = None

    def begin(self) -> None:
        self._task = asyncio.create_task(self._run())

    # -- the watcher's side
    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.gone = True
        else:
            self.pod = read_pod(pod)
        if self.gone or self.pod.ended:
            self._container_ended.set()
        self._changed.set()

    # -- the port
    def output(self) -> AsyncIterator[OutputChunk]:
        return self._output.follow()

    async def result(self) -> RunResult:
        return await asyncio.shield(self._result)

    @property
    def result_ready(self) -> bool:
        return self._result.done()

    async def finished(self) -> None:
        """Wait until the pod and its ConfigMaps are deleted too."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def cancel(self) -> None:
        self.cancelled = True
        self._changed.set()
        await self.api.delete("pod", self.sandbox_id, grace_s=0)

    # -- output

    def _frame(self, frame: OutputFrame) -> None:
        """Output is cut at the limit here as well as in the pod: the launcher shares the
        container with the code, so the adapter does not rely on it alone."""
        limits = self.spec.compile_limits if frame.stage == "compile" else self.spec.limits
        key = (frame.stage, frame.stream)
        used = self._sizes.get(key, 0)
        data = frame.data[: max(limits.output_bytes - used, 0)]
        if len(data) < len(frame.data):
            self._output_exceeded = self._output_exceeded or frame.stage == "run"
            if frame.stage == "run":
                self._truncated[frame.stream] = True
            self._changed.set()
        if not data:
            return
        self._sizes[key] = used + len(data)
        if frame.stage == "compile":
            self._compile_output.extend(data)
        else:
            (self._stdout if frame.stream == "stdout" else self._stderr).extend(data)
        self._output.emit(OutputChunk(frame.stream, data, frame.stage))

    # -- the run
    async def _run(self) -> None:
        try:
            result = await self._drive()
        except Exception as error:  # the platform failed, not the code: say so, never hang
            log.exception("run %s failed in the adapter", self.sandbox_id)
            result = RunResult(
                status=SandboxStatus.INTERNAL_ERROR, message=f"kubernetes: {error!r}"
            )
        finally:
            self._output.emit(None)
        self._result.set_result(result)
        try:
            head, *parts = self.config_maps
            await delete_run(self.api, head, parts, pod=self.sandbox_id)
        finally:  # the sweeper deletes what is left
            self._on_end()

    async def _drive(self) -> RunResult:
        started = time.monotonic()
        deadline = started + self.deadline_s
        unschedulable_since: float | None = None
        follow: asyncio.Task[None] | None = None
        ended_at: float | None = None
        final_reads = 0
        overdue = False
        try:
            while True:
                pod = self.pod
                if self.cancelled or self.gone or self._output_exceeded:
                    break
                if pod.start_failure is not None:
                    break
                if pod.unschedulable is not None and not pod.started:
                    unschedulable_since = unschedulable_since or time.monotonic()
                    if time.monotonic() - unschedulable_since >= self.settings.unschedulable_s:
                        break
                if (pod.started or pod.ended) and follow is None:
                    follow = asyncio.create_task(self.follower.follow())
                waited = time.monotonic() - started
                if not (pod.started or pod.ended) and waited > self.settings.start_timeout_s:
                    return self._result_of(
                        SandboxStatus.INTERNAL_ERROR,
                        f"the pod did not start within {self.settings.start_timeout_s:g}s"
                        f" (phase {pod.phase})",
                    )
                if follow is not None and follow.done() and pod.ended:
                    break
                if follow is not None and pod.ended and not follow.done():
                    # The container is gone but its log stream says nothing more: a dead
                    # connection (no FIN) would hold it forever. Read it once more from the
                    # start; if that stalls too, judge what was read.
                    ended_at = ended_at or time.monotonic()
                    if time.monotonic() - ended_at > REPORT_WAIT_S:
                        follow.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await follow
                        if final_reads:
                            self.follower.error = "the log stream stalled after the end"
                            break
                        final_reads, ended_at = 1, time.monotonic()
                        follow = asyncio.create_task(self.follower.follow())
                if follow is not None and self.follower.reader.ended and not pod.ended:
                    # the launcher is done; the container's state follows shortly
                    await self._wait_changed(REPORT_WAIT_S)
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    overdue = True
                    break
                waiters = [asyncio.ensure_future(self._changed.wait())]
                if follow is not None and not follow.done():
                    waiters.append(follow)  # type: ignore[arg-type]
                await asyncio.wait(
                    waiters, timeout=min(remaining, 1.0), return_when=asyncio.FIRST_COMPLETED
                )
                waiters[0].cancel()
                self._changed.clear()
        finally:
            if follow is not None and not follow.done():
                follow.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follow
        return self._judged(overdue)

    async def _wait_changed(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not self.pod.ended and not self.gone and time.monotonic() < end:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), end - time.monotonic())

    def _judged(self, overdue: bool) -> RunResult:
        reader = self.follower.reader
        lost = None
        if reader.gaps:
            lost = f"log frames {reader.gaps[0][0]}..{reader.gaps[0][1]} were lost"
        elif self.gone and not self.cancelled and not reader.ended:
            lost = "the pod was deleted outside codeexec"
        elif self.pod.ended and not reader.ended and self.follower.error:
            lost = f"the log could not be read to its end ({self.follower.error})"
        verdict = judge(
            self.spec,
            self.pod,
            reader.reports,
            cancelled=self.cancelled,
            output_exceeded=self._output_exceeded,
            overdue=overdue,
            lost=lost,
        )
        message = verdict.message
        if verdict.status is SandboxStatus.INTERNAL_ERROR and reader.noise:
            message += "; launcher said: " + " | ".join(reader.noise[:3])
        return self._result_of(verdict.status, message, verdict.report)

    def _result_of(
        self, status: SandboxStatus, message: str, report: dict[str, Any] | None = None
    ) -> RunResult:
        report = report or {}
        truncated = dict(self._truncated)
        for stream in ("stdout", "stderr"):
            truncated[stream] |= bool(report.get(f"{stream}_truncated"))
        compiled = any(r.get("stage") == "compile" for r in self.follower.reader.reports)
        run_report = report.get("stage") == "run"
        return RunResult(
            status=status,
            exit_code=report.get("exit_code") if run_report else None,
            signal=report.get("signal") if run_report else None,
            stdout=bytes(self._stdout),
            stderr=bytes(self._stderr),
            stdout_truncated=truncated["stdout"],
            stderr_truncated=truncated["stderr"],
            compile_output=bytes(self._compile_output) if compiled else None,
            cpu_time_s=report.get("cpu_time_s"),
            wall_time_s=report.get("wall_time_s"),
            memory_bytes=report.get("memory_bytes"),
            message=message,
        )
