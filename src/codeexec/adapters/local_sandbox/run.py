"""One run in the box: the compile stage if the language has one, then the run stage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from codeexec.adapters.live_output import LiveOutput
from codeexec.adapters.local_sandbox.recipes import Job, Toolchain
from codeexec.adapters.local_sandbox.supervisor import Stage
from codeexec.adapters.local_sandbox.workspace import Workspace
from codeexec.adapters.stage_verdict import StageOutcome, judge
from codeexec.domain.model import Limits, RunResult, RunSpec, SandboxStatus, Stream
from codeexec.ports.sandbox import OutputChunk, SandboxRun

_PASS_THROUGH = (SandboxStatus.CANCELLED, SandboxStatus.INTERNAL_ERROR)


class StageFactory(Protocol):
    """Makes a supervised stage (cgroup, rlimits, command line) for a run's workspace."""

    def stage(
        self,
        *,
        name: str,
        toolchain: Toolchain,
        argv: list[str],
        limits: Limits,
        stdin: bytes,
        workspace: Workspace,
        on_output: Callable[[Stream, bytes], None],
    ) -> Stage: ...

    def release(self, stage: Stage) -> None: ...

    async def finish(self) -> None:
        """After the last stage: release what was made for stages that never ran."""


class BubblewrapRun(SandboxRun):
    """Live output for any number of readers (each sees every chunk from the start) and a
    result that is never an exception: failures of the box itself are `internal_error`."""

    def __init__(
        self,
        sandbox_id: str,
        spec: RunSpec,
        toolchain: Toolchain,
        workspace: Callable[[], Awaitable[Workspace]],
        stages: StageFactory,
        on_end: Callable[[], None],
    ) -> None:
        self.sandbox_id = sandbox_id
        self._spec = spec
        self._toolchain = toolchain
        self._open_workspace = workspace
        self._stages = stages
        self._on_end = on_end
        self._output = LiveOutput()
        self._cancelled = False
        self._current: Stage | None = None
        self._used: list[Stage] = []
        self._result: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(self._run())

    @property
    def ended(self) -> bool:
        """True once the result is known (every process of the run is gone)."""
        return self._result.done()

    def cancel(self) -> None:
        self._cancelled = True
        if self._current is not None:
            self._current.kill("cancel")

    def output(self) -> AsyncIterator[OutputChunk]:
        return self._output.follow()

    async def result(self) -> RunResult:
        return await asyncio.shield(self._result)

    async def finished(self) -> None:
        """Wait until the host side is clean too (work dir and cgroups removed)."""
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        workspace: Workspace | None = None
        try:
            workspace = await self._open_workspace()
            result = await self._stages_in(workspace)
        except Exception as exc:  # the box failed, not the code: say so, never hang
            result = RunResult(
                status=SandboxStatus.INTERNAL_ERROR,
                message=f"sandbox failure: {type(exc).__name__}: {exc}",
            )
        finally:
            self._output.emit(None)
        # Every process of the run is gone by now: answer first, tidy the host after.
        self._result.set_result(result)
        try:
            for stage in self._used:
                self._stages.release(stage)
            await self._stages.finish()
            if workspace is not None:
                await asyncio.get_running_loop().run_in_executor(None, workspace.remove)
        finally:
            self._on_end()

    async def _stages_in(self, workspace: Workspace) -> RunResult:
        spec, tc = self._spec, self._toolchain
        files = tuple(f.name for f in spec.files)
        compile_output: bytes | None = None
        compile_argv = tc.compile_argv(
            Job(files, spec.compile_args, spec.compile_limits.memory_bytes)
        )
        if compile_argv is not None:
            combined = bytearray()
            outcome = await self._stage(
                "compile", compile_argv, spec.compile_limits, b"", workspace, combined
            )
            compile_output = bytes(combined)
            status, message = judge(outcome, spec.compile_limits)
            if status is not SandboxStatus.SUCCEEDED:
                if status not in _PASS_THROUGH:
                    status, message = SandboxStatus.COMPILATION_ERROR, f"compilation: {message}"
                return RunResult(
                    status=status,
                    compile_output=compile_output,
                    message=message,
                    cpu_time_s=outcome.cpu_time_s,
                    wall_time_s=outcome.wall_time_s,
                    memory_bytes=outcome.memory_bytes,
                )
        if self._cancelled:
            return RunResult(
                status=SandboxStatus.CANCELLED,
                compile_output=compile_output,
                message="cancelled before the run stage",
            )
        run_argv = tc.run_argv(Job(files, spec.args, spec.limits.memory_bytes))
        outcome = await self._stage("run", run_argv, spec.limits, spec.stdin, workspace, None)
        status, message = judge(outcome, spec.limits)
        return RunResult(
            status=status,
            exit_code=outcome.exit_code,
            signal=outcome.signal,
            stdout=bytes(outcome.stdout),
            stderr=bytes(outcome.stderr),
            stdout_truncated=outcome.stdout_truncated,
            stderr_truncated=outcome.stderr_truncated,
            compile_output=compile_output,
            cpu_time_s=outcome.cpu_time_s,
            wall_time_s=outcome.wall_time_s,
            memory_bytes=outcome.memory_bytes,
            message=message,
        )

    async def _stage(
        self,
        name: str,
        argv: list[str],
        limits: Limits,
        stdin: bytes,
        workspace: Workspace,
        combined: bytearray | None,
    ) -> StageOutcome:
        def on_output(stream: Stream, data: bytes) -> None:
            if combined is not None:
                combined.extend(data)
            self._output.emit(OutputChunk(stream, data, name))

        stage = self._stages.stage(
            name=name,
            toolchain=self._toolchain,
            argv=argv,
            limits=limits,
            stdin=stdin,
            workspace=workspace,
            on_output=on_output,
        )
        self._current = stage
        self._used.append(stage)
        try:
            if self._cancelled:
                stage.kill("cancel")
            return await stage.run()
        finally:
            self._current = None
