"""The Sandbox contract: what every sandbox that runs real code must do, written once.

A test module subclasses `SandboxContract` and provides a `contract_sandbox` fixture: a
ready sandbox that offers `python` (Python 3). Each test names its runs `cx-<uuid hex>`,
which every sandbox accepts (a Kubernetes object name among them)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from codeexec.domain.model import Limits, RunResult, RunSpec, SandboxStatus, SourceFile
from codeexec.ports.sandbox import Sandbox, SandboxAlreadyStarted, UnknownLanguage

BINARY = bytes(range(256)) * 4 + b"\xff\xfe invalid utf-8 \xc3\x28 and a NUL \x00 end"


def python(
    code: str, *, stdin: bytes = b"", args: tuple[str, ...] = (), **limits: float
) -> RunSpec:
    return RunSpec(
        language="python",
        files=(SourceFile(name="main.py", content=code.encode()),),
        stdin=stdin,
        args=args,
        limits=Limits(**limits),
    )


def new_id() -> str:
    return f"cx-{uuid.uuid4().hex}"


async def run(sandbox: Sandbox, spec: RunSpec) -> RunResult:
    started = await sandbox.start(new_id(), spec)
    return await asyncio.wait_for(started.result(), 60)


class SandboxContract:
    async def test_python_is_offered(self, contract_sandbox: Sandbox) -> None:
        assert any(lang.named("python") for lang in await contract_sandbox.languages())

    async def test_output_is_bytes_exact_and_the_streams_stay_apart(
        self, contract_sandbox: Sandbox
    ) -> None:
        code = (
            "import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read())\n"
            "sys.stderr.buffer.write('ünïcødé ✓ 日本語\\n'.encode())\n"
        )
        result = await run(contract_sandbox, python(code, stdin=BINARY))
        assert result.status is SandboxStatus.SUCCEEDED, result.message
        assert result.stdout == BINARY
        assert result.stderr == "ünïcødé ✓ 日本語\n".encode()
        assert not result.stdout_truncated and not result.stderr_truncated

    async def test_output_is_cut_exactly_at_the_limit_and_flagged(
        self, contract_sandbox: Sandbox
    ) -> None:
        exact = "import sys\nsys.stdout.buffer.write(b'a' * 4096)\n"
        result = await run(contract_sandbox, python(exact, output_bytes=4096))
        assert result.status is SandboxStatus.SUCCEEDED, result.message
        assert result.stdout == b"a" * 4096 and not result.stdout_truncated
        flood = "import sys\nwhile True: sys.stdout.buffer.write(b'b' * 1000)\n"
        result = await run(contract_sandbox, python(flood, output_bytes=4096))
        assert result.status is SandboxStatus.OUTPUT_LIMIT_EXCEEDED, result.message
        assert result.stdout == b"b" * 4096 and result.stdout_truncated

    async def test_arguments_are_passed_verbatim(self, contract_sandbox: Sandbox) -> None:
        args = ("plain", "with space", "quote\"s and 'single'", "new\nline", "ünï", "$(id)", "")
        code = "import sys, json\nprint(json.dumps(sys.argv[1:]))"
        result = await run(contract_sandbox, python(code, args=args))
        assert result.stdout.decode() == json.dumps(list(args)) + "\n"

    @pytest.mark.parametrize(
        ("code", "status", "exit_code", "signal"),
        [
            ("print('ok')", SandboxStatus.SUCCEEDED, 0, None),
            ("raise SystemExit(3)", SandboxStatus.RUNTIME_ERROR, 3, None),
            ("import os\nos.kill(os.getpid(), 9)", SandboxStatus.SIGNALED, None, 9),
        ],
    )
    async def test_endings_are_told_apart(
        self,
        contract_sandbox: Sandbox,
        code: str,
        status: SandboxStatus,
        exit_code: int | None,
        signal: int | None,
    ) -> None:
        result = await run(contract_sandbox, python(code))
        assert (result.status, result.exit_code, result.signal) == (status, exit_code, signal), (
            result.message
        )

    async def test_the_wall_limit_stops_a_sleeper(self, contract_sandbox: Sandbox) -> None:
        result = await run(contract_sandbox, python("import time\ntime.sleep(60)", wall_time_s=1))
        assert result.status is SandboxStatus.TIME_LIMIT_EXCEEDED, result.message

    async def test_output_is_live_and_every_reader_sees_all_of_it(
        self, contract_sandbox: Sandbox
    ) -> None:
        code = "import time\nprint('first', flush=True)\ntime.sleep(1)\nprint('second')\n"
        started = await contract_sandbox.start(new_id(), python(code))
        arrivals = [(time.monotonic(), chunk) async for chunk in started.output()]
        result = await started.result()
        ended = time.monotonic()
        assert b"".join(c.data for _, c in arrivals) == b"first\nsecond\n" == result.stdout
        assert all(c.stream == "stdout" and c.stage == "run" for _, c in arrivals)
        assert ended - arrivals[0][0] > 0.7  # the first line came while the run went on
        again = [chunk async for chunk in started.output()]
        assert again == [c for _, c in arrivals]

    async def test_stop_cancels_the_run(self, contract_sandbox: Sandbox) -> None:
        sandbox_id = new_id()
        code = "import time\nprint('ready', flush=True)\ntime.sleep(60)"
        started = await contract_sandbox.start(sandbox_id, python(code, wall_time_s=120))
        async for chunk in started.output():
            if b"ready" in chunk.data:
                break
        assert await contract_sandbox.stop(sandbox_id) is True
        result = await asyncio.wait_for(started.result(), 10)
        assert result.status is SandboxStatus.CANCELLED
        assert result.stdout.startswith(b"ready")  # what it printed before the stop
        assert await contract_sandbox.stop(sandbox_id) is False

    async def test_a_sandbox_id_runs_at_most_once(self, contract_sandbox: Sandbox) -> None:
        sandbox_id = new_id()
        first = await contract_sandbox.start(sandbox_id, python("print(1)"))
        with pytest.raises(SandboxAlreadyStarted):
            await contract_sandbox.start(sandbox_id, python("print(2)"))
        assert (await first.result()).stdout == b"1\n"
        with pytest.raises(SandboxAlreadyStarted):
            await contract_sandbox.start(sandbox_id, python("print(3)"))

    async def test_an_unknown_language_is_refused(self, contract_sandbox: Sandbox) -> None:
        spec = RunSpec(language="cobol", files=(SourceFile(name="a.cob", content=b""),))
        with pytest.raises(UnknownLanguage):
            await contract_sandbox.start(new_id(), spec)
