"""Where a sandboxed hello world's time goes: CPU per part and wall time per step, both paths.

CPU comes from a cgroup around this process (see cpumeter.py), split into what our server
process spends (supervisor, event loop), what the run's own cgroup counts after its go (the
code: interpreter start, program, exit) and the rest (making the box: bubblewrap and setpriv
on the cold path, the zygote's fork and root on the fast one). Wall times are the stage's
own timeline. Printed as `bench: profile_... VALUE ms`.

    python bench/sandbox_profile.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from cpumeter import CpuMeter

from codeexec.adapters.local_sandbox import BubblewrapSandbox, boxprocess
from codeexec.domain.model import RunSpec, SandboxStatus, SourceFile

HELLO = RunSpec(language="python", files=(SourceFile(name="main.py", content=b"print('hello')\n"),))
TRUE = RunSpec(language="bash", files=(SourceFile(name="main.sh", content=b"exit 0\n"),))
STEPS = [
    ("start", "opened", "box taken or spawned"),
    ("opened", "init", "until the box's pid 1 is known"),
    ("init", "go", "limits set, go sent"),
    ("go", "exited", "the code: start, program, exit"),
    ("exited", "collected", "status and accounting read"),
    ("collected", "empty", "every process gone"),
]


def report(name: str, value: float, unit: str = "ms") -> None:
    print(f"bench: profile_{name} {value:.2f} {unit}", flush=True)


async def bare_python(runs: int, meter: CpuMeter) -> None:
    with tempfile.TemporaryDirectory() as d:
        with open(f"{d}/main.py", "wb") as f:
            f.write(b"print('hello')\n")
        walls = []
        cpu = meter.seconds()
        for _ in range(runs):
            started = time.perf_counter()
            box = boxprocess.spawn(
                ["/usr/bin/python3", f"{d}/main.py"],
                stdin=subprocess.DEVNULL,
                pass_fds=(),
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                on_output=lambda stream, data: None,
                on_exit=lambda: None,
            )
            await box.finished
            box.close()
            walls.append(time.perf_counter() - started)
        report("bare_python_cpu", (meter.seconds() - cpu) / runs * 1000)
        report("bare_python_wall_p50", statistics.median(walls) * 1000)


async def sandboxed(
    label: str,
    box: BubblewrapSandbox,
    spec: RunSpec,
    runs: int,
    meter: CpuMeter,
    steps: bool = True,
) -> None:
    for _ in range(3):
        run = await box.start(uuid.uuid4().hex, spec)
        await run.result()
        await run.finished()
    await asyncio.sleep(0.3)
    cpu, own = meter.seconds(), time.process_time()
    in_run: list[float] = []
    walls: list[float] = []
    timelines: list[dict[str, float]] = []
    for _ in range(runs):
        started = time.perf_counter()
        run = await box.start(uuid.uuid4().hex, spec)
        result = await run.result()
        walls.append(time.perf_counter() - started)
        await run.finished()
        assert result.status is SandboxStatus.SUCCEEDED, result.message
        in_run.append(result.cpu_time_s or 0.0)
        timelines.append(run._used[-1].outcome.timeline)  # type: ignore[attr-defined]
    await asyncio.sleep(0.3)  # replacements made for the pool land in this window too
    total = (meter.seconds() - cpu) / runs * 1000
    server = (time.process_time() - own) / runs * 1000
    code = statistics.median(in_run) * 1000
    report(f"{label}_cpu", total)
    report(f"{label}_cpu_server", server)
    report(f"{label}_cpu_code", code)
    report(f"{label}_cpu_box", total - server - code)
    report(f"{label}_wall_p50", statistics.median(walls) * 1000)
    if steps:
        for a, b, _ in STEPS:
            values = [t[b] - t[a] for t in timelines if a in t and b in t]
            report(f"{label}_step_{a}_to_{b}", statistics.median(values) * 1000)


async def box_making(box: BubblewrapSandbox, runs: int, meter: CpuMeter) -> None:
    assert box._fast is not None and box._fast.pool is not None
    pool = box._fast.pool
    cpu, own = meter.seconds(), time.process_time()
    made = [pool._start((), None) for _ in range(runs)]
    for prepared in made:
        await prepared.init_pid()
    await asyncio.sleep(0.2)
    report("fast_box_make_cpu", (meter.seconds() - cpu) / runs * 1000)
    report("fast_box_make_cpu_server", (time.process_time() - own) / runs * 1000)
    for prepared in made:
        await prepared.destroy()
        prepared.workspace.remove()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with CpuMeter() as meter:
        print(f"# cpu measured by: {meter.kind}", flush=True)
        cold = BubblewrapSandbox(fast_start=False)
        fast = BubblewrapSandbox()
        await fast.languages()
        try:
            await bare_python(args.runs, meter)
            await sandboxed("cold_python", cold, HELLO, args.runs, meter)
            await sandboxed("cold_true", cold, TRUE, args.runs, meter, steps=False)
            await sandboxed("fast_python", fast, HELLO, args.runs, meter)
            await sandboxed("fast_true", fast, TRUE, args.runs, meter, steps=False)
            await box_making(fast, args.runs, meter)
        finally:
            await cold.close()
            await fast.close()
    for a, b, meaning in STEPS:
        print(f"# step {a}_to_{b}: {meaning}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
