"""FakeSandbox: a scripted sandbox for unit tests; the source is a tiny script of directives.

out TEXT      write TEXT and a newline to stdout     err TEXT   same, to stderr
sleep SECONDS wait (stop() interrupts it)            hang       wait until stopped
exit CODE     end with this exit code                status S   end with SandboxStatus S
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence

from codeexec.domain.model import RunResult, RunSpec, SandboxStatus, Stream
from codeexec.ports.sandbox import (
    Language,
    OutputChunk,
    Sandbox,
    SandboxAlreadyStarted,
    SandboxRun,
    UnknownLanguage,
)

FAKE_LANGUAGES = (Language("fake", "1.0", aliases=("script",)), Language("python", "3.11"))


class FakeSandboxRun(SandboxRun):
    def __init__(self, sandbox_id: str, spec: RunSpec) -> None:
        self.sandbox_id = sandbox_id
        self.spec = spec
        self._chunks: asyncio.Queue[OutputChunk | None] = asyncio.Queue()
        self._stopped = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> RunResult:
        stdout, stderr = bytearray(), bytearray()
        status, exit_code = SandboxStatus.SUCCEEDED, 0
        exit_code_or_none: int | None = 0
        try:
            for line in self.spec.files[0].content.decode("utf-8", "replace").splitlines():
                op, _, arg = line.strip().partition(" ")
                if op in ("out", "err"):
                    data = (arg + "\n").encode()
                    (stdout if op == "out" else stderr).extend(data)
                    stream: Stream = "stdout" if op == "out" else "stderr"
                    self._chunks.put_nowait(OutputChunk(stream, data))
                elif op in ("sleep", "hang"):
                    seconds = float(arg) if op == "sleep" else None
                    if await self._interrupted(seconds):
                        status, exit_code_or_none = SandboxStatus.CANCELLED, None
                        break
                elif op == "exit":
                    exit_code = exit_code_or_none = int(arg)
                    status = (
                        SandboxStatus.SUCCEEDED if exit_code == 0 else (SandboxStatus.RUNTIME_ERROR)
                    )
                    break
                elif op == "status":
                    status = SandboxStatus(arg)
                    break
                elif op:
                    raise ValueError(f"unknown directive {op!r}")
        except (ValueError, UnicodeError) as error:
            return RunResult(status=SandboxStatus.INTERNAL_ERROR, message=f"fake: {error}")
        finally:
            self._chunks.put_nowait(None)
        return RunResult(
            status=status,
            exit_code=exit_code_or_none,
            stdout=bytes(stdout),
            stderr=bytes(stderr),
            cpu_time_s=0.0,
            wall_time_s=0.0,
            memory_bytes=0,
        )

    async def _interrupted(self, seconds: float | None) -> bool:
        try:
            await asyncio.wait_for(self._stopped.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def stop(self) -> None:
        self._stopped.set()

    async def output(self) -> AsyncIterator[OutputChunk]:
        while (chunk := await self._chunks.get()) is not None:
            yield chunk

    async def result(self) -> RunResult:
        return await asyncio.shield(self._task)


class FakeSandbox(Sandbox):
    """Counts start attempts per sandbox id, so tests can prove no run was tried twice."""

    def __init__(self) -> None:
        self.starts: Counter[str] = Counter()
        self.active: dict[str, FakeSandboxRun] = {}

    async def start(self, sandbox_id: str, spec: RunSpec) -> SandboxRun:
        names = {n for lang in FAKE_LANGUAGES for n in (lang.name, *lang.aliases)}
        if spec.language not in names:
            raise UnknownLanguage(f"language {spec.language!r} is not available")
        self.starts[sandbox_id] += 1  # attempts, so a test sees a second try too
        if self.starts[sandbox_id] > 1:
            raise SandboxAlreadyStarted(sandbox_id)
        run = FakeSandboxRun(sandbox_id, spec)
        self.active[sandbox_id] = run
        run._task.add_done_callback(lambda _: self.active.pop(sandbox_id, None))
        return run

    async def stop(self, sandbox_id: str) -> bool:
        run = self.active.get(sandbox_id)
        if run is None:
            return False
        run.stop()
        return True

    async def languages(self) -> Sequence[Language]:
        return FAKE_LANGUAGES

    def enforced_limits(self) -> Mapping[str, str]:
        return {"wall_time": "scripted"}

    async def close(self) -> None:
        for run in list(self.active.values()):
            run.stop()
