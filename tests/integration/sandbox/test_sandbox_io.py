"""Inputs reach the code intact; output comes back bytes-exact, live, with truthful statuses."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from boxkit import run, spec

from codeexec.adapters.local_sandbox import BubblewrapSandbox
from codeexec.domain.model import Limits, SandboxStatus

pytestmark = pytest.mark.integration

BINARY = bytes(range(256)) * 4 + b"\xff\xfe invalid utf-8 \xc3\x28 and a NUL \x00 end"


async def test_binary_and_non_ascii_output_is_bytes_exact(sandbox: BubblewrapSandbox) -> None:
    code = (
        "import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read())\n"
        "sys.stderr.buffer.write('ünïcødé ✓ 日本語\\n'.encode())\n"
    )
    result = await run(sandbox, "python", code, stdin=BINARY)
    assert result.stdout == BINARY
    assert result.stderr == "ünïcødé ✓ 日本語\n".encode()
    assert not result.stdout_truncated and not result.stderr_truncated


async def test_output_exactly_at_the_limit_is_not_truncated(sandbox: BubblewrapSandbox) -> None:
    code = "import sys\nsys.stdout.buffer.write(b'a' * 2**20)\n"
    result = await run(sandbox, "python", code)
    assert result.status is SandboxStatus.SUCCEEDED
    assert result.stdout == b"a" * 2**20 and not result.stdout_truncated


async def test_large_stdin_round_trips(sandbox: BubblewrapSandbox) -> None:
    data = bytes(range(251)) * 20_000  # about 5 MB, not a multiple of any buffer size
    result = await run(
        sandbox, "bash", "exec cat", stdin=data, limits=Limits(output_bytes=8 * 2**20)
    )
    assert result.status is SandboxStatus.SUCCEEDED and result.stdout == data


async def test_stdin_that_is_never_read_does_not_block(sandbox: BubblewrapSandbox) -> None:
    result = await run(sandbox, "python", "print('done')", stdin=b"z" * 10 * 2**20)
    assert result.status is SandboxStatus.SUCCEEDED and result.stdout == b"done\n"


async def test_arguments_are_passed_verbatim(sandbox: BubblewrapSandbox) -> None:
    args = ("plain", "with space", "quote\"s and 'single'", "new\nline", "ünï", "-x", "--", "")
    result = await run(
        sandbox, "python", "import sys, json\nprint(json.dumps(sys.argv[1:]))", args=args
    )
    assert result.stdout.decode() == __import__("json").dumps(list(args)) + "\n"


async def test_live_output_arrives_before_the_run_ends(sandbox: BubblewrapSandbox) -> None:
    code = "import time\nprint('first')\ntime.sleep(1)\nprint('second')\n"
    started = await sandbox.start("live", spec("python", code))
    arrivals = []
    async for chunk in started.output():
        arrivals.append((time.monotonic(), chunk))
    result = await started.result()
    ended = time.monotonic()
    assert b"".join(c.data for _, c in arrivals) == b"first\nsecond\n" == result.stdout
    first_at, first = arrivals[0]
    assert first.data.startswith(b"first") and first.stream == "stdout" and first.stage == "run"
    assert ended - first_at > 0.7


async def test_output_can_be_followed_by_several_readers_and_after_the_end(
    sandbox: BubblewrapSandbox,
) -> None:
    started = await sandbox.start(
        "readers", spec("bash", "for i in 1 2 3; do echo $i; echo e$i >&2; sleep 0.05; done")
    )

    async def collect() -> list[tuple[str, bytes]]:
        return [(c.stream, c.data) async for c in started.output()]

    live_a, live_b = await asyncio.gather(collect(), collect())
    await started.result()
    assert live_a == live_b == await collect()
    assert b"".join(d for s, d in live_a if s == "stdout") == b"1\n2\n3\n"
    assert b"".join(d for s, d in live_a if s == "stderr") == b"e1\ne2\ne3\n"


async def test_compiler_output_streams_live_as_the_compile_stage(
    sandbox: BubblewrapSandbox,
) -> None:
    started = await sandbox.start(
        "warn", spec("c", '#warning "careful now"\nint main(void) { return 0; }\n')
    )
    chunks = [c async for c in started.output()]
    result = await started.result()
    assert result.status is SandboxStatus.SUCCEEDED
    assert chunks and all(c.stage == "compile" for c in chunks)
    assert result.compile_output is not None and b"careful now" in result.compile_output


@pytest.mark.parametrize(
    ("language", "code", "status", "exit_code", "signal"),
    [
        ("python", "raise SystemExit(3)", SandboxStatus.RUNTIME_ERROR, 3, None),
        ("python", "1 / 0", SandboxStatus.RUNTIME_ERROR, 1, None),
        (
            "python",
            "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)",
            SandboxStatus.SIGNALED,
            None,
            11,
        ),
        (
            "c",
            "int main(void) { volatile int *p = 0; return *p; }",
            SandboxStatus.SIGNALED,
            None,
            11,
        ),
        ("c", "#include <stdlib.h>\nint main(void) { abort(); }", SandboxStatus.SIGNALED, None, 6),
        ("bash", "exit 0", SandboxStatus.SUCCEEDED, 0, None),
        pytest.param(
            "python",
            "raise SystemExit(139)",
            SandboxStatus.RUNTIME_ERROR,
            139,
            None,
            marks=pytest.mark.skipif(
                tuple(map(int, os.uname().release.split(".")[:2])) < (6, 15),
                reason="exact wait status of a non-child needs PIDFD_INFO_EXIT (Linux 6.15)",
            ),
        ),
    ],
)
async def test_endings_are_told_apart(
    sandbox: BubblewrapSandbox,
    language: str,
    code: str,
    status: SandboxStatus,
    exit_code: int | None,
    signal: int | None,
) -> None:
    result = await run(sandbox, language, code)
    assert (result.status, result.exit_code, result.signal) == (status, exit_code, signal), (
        result.message
    )
    if language == "python" and exit_code == 1:
        assert b"ZeroDivisionError" in result.stderr


async def test_measurements_are_reported(sandbox: BubblewrapSandbox) -> None:
    code = "x = bytearray(40 * 2**20)\nsum(range(3_000_000))\n"
    result = await run(sandbox, "python", code)
    assert result.cpu_time_s is not None and result.cpu_time_s > 0.01
    assert result.wall_time_s is not None and result.wall_time_s >= result.cpu_time_s * 0.5
    assert result.memory_bytes is not None and result.memory_bytes > 40 * 2**20
