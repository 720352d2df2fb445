"""The sandbox alone vs the bare runtime: hello-world latency, throughput 8 at a time, CPU, memory.

For Python, Node and C (compile and run), interleaved in one process against the same
runtime started bare (same binary, environment and spawn path, same load), each figure
printed as `bench: NAME VALUE UNIT`:

    sandbox_<lang>_hello_p50 / p90, bare_<lang>_hello_p50 / p90, and their ratio
    sandbox_cold_<lang>_hello_p50   bubblewrap per stage (the fallback path), for contrast
    sandbox_<lang>_sustained_8 / bare_<lang>_sustained_8 runs/s, and their ratio
    sandbox_<lang>_cpu_per_run / bare_<lang>_cpu_per_run (a cgroup around the benchmark)
    sandbox_helpers_pss: the zygote and the prepared boxes waiting

    python bench/sandbox_bench.py [--runs N] [--seconds S] [--languages python,javascript,c]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable

from cpumeter import CpuMeter

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
Once = Callable[[], Awaitable[float]]


def report(name: str, value: float, unit: str) -> None:
    digits = 3 if unit == "x" else 1 if unit in ("ms", "runs/s") else 2
    print(f"bench: {name} {value:.{digits}f} {unit}", flush=True)


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1]


async def _spawn_bare(argv: list[str], env: dict[str, str], cwd: str) -> tuple[int, bytes, bytes]:
    # The same spawn path the sandbox's cold start uses (vfork+exec, loop readers, a pidfd),
    # so the ratio is the cost of the box and not of two ways of starting a process.
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


def bare_runner(tc: Toolchain, workdir: str) -> Once:
    """One hello world with the same runtime and environment, without the box."""
    name, code = HELLO[tc.recipe.name]
    with open(os.path.join(workdir, name), "wb") as f:
        f.write(code)
    job = Job((name,))
    stages = [argv for argv in (tc.compile_argv(job), tc.run_argv(job)) if argv is not None]
    stages = [[a.replace("/box", workdir) for a in argv] for argv in stages]

    async def once() -> float:
        started = time.perf_counter()
        out = b""
        for argv in stages:
            code, out, err = await _spawn_bare(argv, environment(tc), workdir)
            if code != 0:
                raise RuntimeError(f"bare {argv} failed: {err!r}")
        elapsed = time.perf_counter() - started
        if out != b"hello\n":
            raise RuntimeError(f"bare {tc.recipe.name} printed {out!r}")
        return elapsed

    return once


def boxed_runner(box: BubblewrapSandbox, tc: Toolchain) -> Once:
    name, code = HELLO[tc.recipe.name]
    spec = RunSpec(
        language=tc.recipe.name, version=tc.version, files=(SourceFile(name=name, content=code),)
    )

    async def once() -> float:
        started = time.perf_counter()
        run = await box.start(uuid.uuid4().hex, spec)
        result = await run.result()
        elapsed = time.perf_counter() - started
        if result.status is not SandboxStatus.SUCCEEDED or result.stdout != b"hello\n":
            raise RuntimeError(f"sandbox {tc.recipe.name}: {result.status} {result.message}")
        return elapsed

    return once


async def latency(label: str, runs: int, box: Once, cold: Once, bare: Once) -> None:
    for once in (box, cold, bare, box, cold, bare):  # warm caches on every side
        await once()
    boxed_s: list[float] = []
    cold_s: list[float] = []
    bare_s: list[float] = []
    for i in range(runs):
        boxed_s.append(await box())
        bare_s.append(await bare())
        if i % 2 == 0:  # the cold path is for contrast: half as many
            cold_s.append(await cold())
    for side, samples in (("sandbox", boxed_s), ("bare", bare_s)):
        report(f"{side}_{label}_hello_p50", statistics.median(samples) * 1000, "ms")
        report(f"{side}_{label}_hello_p90", p90(samples) * 1000, "ms")
    ratio = statistics.median(boxed_s) / statistics.median(bare_s)
    report(f"sandbox_{label}_hello_ratio_p50", ratio, "x")
    report(f"sandbox_{label}_hello_ratio_p90", p90(boxed_s) / p90(bare_s), "x")
    report(f"sandbox_cold_{label}_hello_p50", statistics.median(cold_s) * 1000, "ms")
    report(
        f"sandbox_cold_{label}_hello_ratio_p50",
        statistics.median(cold_s) / statistics.median(bare_s),
        "x",
    )


async def sustained(make: Callable[[int], Once], clients: int, seconds: float) -> int:
    """Runs completed by `clients` loops in `seconds` (each loop its own runner)."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(once: Once) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await once()
            done += 1

    await asyncio.gather(*(loop(make(i)) for i in range(clients)))
    return done


async def throughput(
    label: str,
    box: Callable[[int], Once],
    bare: Callable[[int], Once],
    meter: CpuMeter,
    seconds: float,
    clients: int = 8,
) -> None:
    rates: dict[str, list[float]] = {"sandbox": [], "bare": []}
    cpu: dict[str, list[float]] = {"sandbox": [], "bare": []}
    for _ in range(2):  # interleaved: bare, box, bare, box
        for side, make in (("bare", bare), ("sandbox", box)):
            cpu_before, started = meter.seconds(), time.perf_counter()
            done = await sustained(make, clients, seconds)
            await asyncio.sleep(0.3)  # let the last boxes' tidying land in this phase
            rates[side].append(done / (time.perf_counter() - started - 0.3))
            cpu[side].append((meter.seconds() - cpu_before) / max(done, 1))
    for side in ("sandbox", "bare"):
        report(f"{side}_{label}_sustained_{clients}", statistics.median(rates[side]), "runs/s")
        report(f"{side}_{label}_cpu_per_run", statistics.median(cpu[side]) * 1000, "ms")
    ratio = statistics.median(rates["sandbox"]) / statistics.median(rates["bare"])
    report(f"sandbox_{label}_sustained_{clients}_ratio", ratio, "x")


def helpers_pss(box: BubblewrapSandbox) -> int:
    """Proportional set size of the zygote and the boxes waiting in the pool, in bytes."""
    total = 0
    pids = box._fast.memory_pids() if box._fast is not None else []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss = next(line for line in f if line.startswith("Pss:"))
            total += int(pss.split()[1]) * 1024
        except (OSError, StopIteration):
            continue
    return total


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--languages", default="python,javascript,c")
    args = parser.parse_args()
    with CpuMeter() as meter:
        print(f"# cpu measured by: {meter.kind}", flush=True)
        box = BubblewrapSandbox()
        cold = BubblewrapSandbox(fast_start=False)
        toolchains = await detect_toolchains()
        await box.languages()
        print(f"# {box.enforced_limits().get('isolation', 'sandbox unavailable')}", flush=True)
        dirs: list[str] = []

        def workdir() -> str:
            dirs.append(tempfile.mkdtemp(prefix="codeexec-bench-"))
            return dirs[-1]

        try:
            for language in args.languages.split(","):
                try:
                    tc = choose(toolchains, language, None)
                except Exception:
                    print(f"# {language}: not installed, skipped")
                    continue
                label = SHORT[language]
                print(f"# {language} {tc.version}: {', '.join(tc.tools.values())}", flush=True)
                await latency(
                    label,
                    args.runs,
                    boxed_runner(box, tc),
                    boxed_runner(cold, tc),
                    bare_runner(tc, workdir()),
                )
                bare_dirs = [workdir() for _ in range(8)]
                await throughput(
                    label,
                    lambda i, tc=tc: boxed_runner(box, tc),  # type: ignore[misc]
                    lambda i, tc=tc, dirs=bare_dirs: bare_runner(tc, dirs[i]),  # type: ignore[misc]
                    meter,
                    args.seconds,
                )
            await asyncio.sleep(1)  # the pool refilled
            report("sandbox_helpers_pss", helpers_pss(box) / 2**20, "MiB")
        finally:
            await box.close()
            await cold.close()
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
