"""Start-up cost of the bubblewrap sandbox: hello world in the box vs the bare runtime.

Both sides run interleaved in one process (same interpreter, same event loop, same load),
each figure printed as `bench: NAME VALUE UNIT`. Compiled languages include compiling.

    python bench/sandbox_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable

from codeexec.adapters.local_sandbox import BubblewrapSandbox, boxprocess, detect_toolchains
from codeexec.adapters.local_sandbox.boxcommand import environment
from codeexec.adapters.local_sandbox.languages import choose
from codeexec.adapters.local_sandbox.recipes import Job, Toolchain
from codeexec.domain.model import RunSpec, SandboxStatus, SourceFile

HELLO = {
    "python": ("main.py", b"print('hello')\n"),
    "javascript": ("main.js", b"console.log('hello')\n"),
    "c": ("main.c", b'#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'),
}
SHORT = {"python": "python", "javascript": "node", "c": "c"}


async def _spawn_bare(argv: list[str], env: dict[str, str], cwd: str) -> tuple[int, bytes, bytes]:
    # The same spawn path the sandbox uses (vfork+exec, loop readers, a pidfd), so the ratio
    # is the cost of the box alone and not of two ways of starting a process.
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    box = boxprocess.spawn(
        argv,
        stdin=subprocess.DEVNULL,
        pass_fds=(),
        env=env,
        on_output=lambda stream, data: chunks[stream].append(data),
        on_exit=lambda: None,
        cwd=cwd,
    )
    try:
        await box.finished
    finally:
        box.close()
    assert box.returncode is not None
    return box.returncode, b"".join(chunks["stdout"]), b"".join(chunks["stderr"])


async def bare(tc: Toolchain, workdir: str) -> float:
    """One hello world with the same runtime and environment, without the box."""
    name = HELLO[tc.recipe.name][0]
    started = time.perf_counter()
    job = Job((name,))
    out = b""
    for argv in (tc.compile_argv(job), tc.run_argv(job)):
        if argv is None:
            continue
        argv = [a.replace("/box", workdir) for a in argv]
        code, out, err = await _spawn_bare(argv, environment(tc), workdir)
        if code != 0:
            raise RuntimeError(f"bare {argv} failed: {err!r}")
    elapsed = time.perf_counter() - started
    if out != b"hello\n":
        raise RuntimeError(f"bare {tc.recipe.name} printed {out!r}")
    return elapsed


async def boxed(box: BubblewrapSandbox, tc: Toolchain) -> float:
    name, code = HELLO[tc.recipe.name]
    spec = RunSpec(
        language=tc.recipe.name,
        version=tc.version,
        files=(SourceFile(name=name, content=code),),
    )
    started = time.perf_counter()
    run = await box.start(uuid.uuid4().hex, spec)
    result = await run.result()
    elapsed = time.perf_counter() - started
    if result.status is not SandboxStatus.SUCCEEDED or result.stdout != b"hello\n":
        raise RuntimeError(f"sandbox {tc.recipe.name}: {result.status} {result.message}")
    return elapsed


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1]


def report(name: str, value: float, unit: str) -> None:
    print(f"bench: {name} {value:.{3 if unit == 'x' else 1}f} {unit}", flush=True)


async def measure(
    label: str,
    runs: int,
    box_once: Callable[[], Awaitable[float]],
    bare_once: Callable[[], Awaitable[float]],
) -> None:
    for _ in range(3):  # warm caches on both sides
        await box_once()
        await bare_once()
    boxed_s, bare_s = [], []
    for _ in range(runs):
        boxed_s.append(await box_once())
        bare_s.append(await bare_once())
    for side, samples in (("sandbox", boxed_s), ("bare", bare_s)):
        report(f"{side}_{label}_hello_p50", statistics.median(samples) * 1000, "ms")
        report(f"{side}_{label}_hello_p90", p90(samples) * 1000, "ms")
    report(
        f"sandbox_{label}_hello_ratio_p50",
        statistics.median(boxed_s) / statistics.median(bare_s),
        "x",
    )
    report(f"sandbox_{label}_hello_ratio_p90", p90(boxed_s) / p90(bare_s), "x")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    box = BubblewrapSandbox()
    toolchains = await detect_toolchains()
    print(f"# {box.enforced_limits().get('isolation', 'sandbox unavailable')}", flush=True)
    try:
        for language, (name, code) in HELLO.items():
            try:
                tc = choose(toolchains, language, None)
            except Exception:
                print(f"# {language}: not installed, skipped")
                continue
            print(f"# {language} {tc.version}: {', '.join(tc.tools.values())}", flush=True)
            with tempfile.TemporaryDirectory() as workdir:
                with open(os.path.join(workdir, name), "wb") as f:
                    f.write(code)

                async def box_once(tc: Toolchain = tc) -> float:
                    return await boxed(box, tc)

                async def bare_once(tc: Toolchain = tc, workdir: str = workdir) -> float:
                    return await bare(tc, workdir)

                await measure(SHORT[language], args.runs, box_once, bare_once)
    finally:
        await box.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
