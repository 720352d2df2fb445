"""Starting, stopping and closing: ids run once, cancel kills the tree, limits are reported."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest
from boxkit import box_processes, host_entries, processes_named, run, spec

from codeexec.adapters.local_sandbox import BubblewrapSandbox
from codeexec.domain.model import Limits, SandboxStatus, SourceFile
from codeexec.ports.sandbox import SandboxAlreadyStarted, SandboxError, UnknownLanguage

pytestmark = pytest.mark.integration


async def test_stop_cancels_and_kills_the_whole_tree(
    sandbox: BubblewrapSandbox, uid_base: int, marker: str
) -> None:
    code = (
        f"import subprocess, time\nfor _ in range(3):\n"
        f"    subprocess.Popen(['{marker}', '600'], executable='/bin/sleep',"
        f" start_new_session=True)\nprint('ready', flush=True)\ntime.sleep(600)\n"
    )
    started = await sandbox.start("to-cancel", spec("python", code, limits=Limits(wall_time_s=60)))
    async for chunk in started.output():
        if b"ready" in chunk.data:
            break
    assert len(processes_named(marker)) == 3
    stopped_at = time.monotonic()
    assert await sandbox.stop("to-cancel") is True
    result = await started.result()
    assert result.status is SandboxStatus.CANCELLED
    assert time.monotonic() - stopped_at < 2
    assert processes_named(marker) == [] and box_processes(uid_base) == []
    assert await sandbox.stop("to-cancel") is False


async def test_stop_during_compilation_cancels_before_anything_runs(
    sandbox: BubblewrapSandbox,
) -> None:
    started = await sandbox.start(
        "compile-cancel",
        spec("c", '#include <stdio.h>\nint main(void) { puts("ran"); return 0; }\n'),
    )
    await asyncio.sleep(0.01)
    assert await sandbox.stop("compile-cancel") is True
    result = await started.result()
    assert result.status is SandboxStatus.CANCELLED and result.stdout == b""


async def test_a_sandbox_id_runs_at_most_once(sandbox: BubblewrapSandbox) -> None:
    first = await sandbox.start("once", spec("python", "print(1)"))
    with pytest.raises(SandboxAlreadyStarted):
        await sandbox.start("once", spec("python", "print(2)"))
    await first.result()
    with pytest.raises(SandboxAlreadyStarted):
        await sandbox.start("once", spec("python", "print(3)"))


async def test_unknown_language_or_version_is_refused(sandbox: BubblewrapSandbox) -> None:
    with pytest.raises(UnknownLanguage):
        await sandbox.start("cobol", spec("python", "x").model_copy(update={"language": "cobol"}))
    with pytest.raises(UnknownLanguage):
        await sandbox.start("py1", spec("python", "x", version="1.0"))
    assert await sandbox.stop("cobol") is False


async def test_unsafe_file_names_are_refused_before_anything_is_written(
    sandbox: BubblewrapSandbox, tmp_path: os.PathLike[str]
) -> None:
    base = spec("python", "print(1)")
    # The contract refuses such names; the sandbox must too, for specs that skipped it.
    escaping = SourceFile.model_construct(name="../../escaped", content=b"x")
    evil = base.model_copy(update={"files": (*base.files, escaping)})
    with pytest.raises(SandboxError):
        await sandbox.start("evil", evil)


async def test_close_stops_active_runs(uid_base: int) -> None:
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=64)
    started = await box.start("long", spec("bash", "sleep 600", limits=Limits(wall_time_s=600)))
    await asyncio.sleep(0.2)
    await box.close()
    assert (await started.result()).status is SandboxStatus.CANCELLED
    assert box_processes(uid_base) == []


async def test_enforced_limits_say_how(sandbox: BubblewrapSandbox) -> None:
    limits = sandbox.enforced_limits()
    for key in (
        "wall_time_s",
        "cpu_time_s",
        "memory_bytes",
        "processes",
        "output_bytes",
        "file_size_bytes",
        "open_files",
        "network",
        "work_dir",
    ):
        assert limits[key], key
    if host_entries("/sys/fs/cgroup/memory"):  # cgroup v1 here; v2 hosts say "cgroup v2"
        assert "cgroup" in limits["memory_bytes"]


async def test_without_cgroups_rlimits_still_bound_the_code(uid_base: int) -> None:
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=64, use_cgroups=False)
    try:
        assert "RLIMIT_AS" in box.enforced_limits()["memory_bytes"]
        tight = Limits(wall_time_s=3, cpu_time_s=1, memory_bytes=64 * 2**20, processes=8)
        memory = await run(box, "python", "x = bytearray(200 * 2**20)", limits=tight)
        assert memory.status is SandboxStatus.RUNTIME_ERROR and b"MemoryError" in memory.stderr
        forks = await run(
            box,
            "python",
            "import os\nn = 0\ntry:\n    while True:\n"
            "        if os.fork() == 0:\n            import time; time.sleep(5)\n"
            "        n += 1\nexcept OSError:\n    print(n)\n",
            limits=tight,
        )
        assert int(forks.stdout) < tight.processes
        loop = await run(box, "python", "while True:\n    pass\n", limits=tight)
        assert loop.status is SandboxStatus.TIME_LIMIT_EXCEEDED
    finally:
        await box.close()
    assert box_processes(uid_base) == []


async def test_many_runs_leave_nothing_behind(sandbox: BubblewrapSandbox, uid_base: int) -> None:
    work_root = sandbox._work.path
    before = host_entries(work_root)
    results = await asyncio.gather(
        *(run(sandbox, "bash", "echo hi > /box/f; cat /box/f") for _ in range(6))
    )
    assert all(r.stdout == b"hi\n" for r in results)
    assert box_processes(uid_base) == []  # the processes are gone when the result is
    await sandbox.close()  # host-side tidying finishes just after the results
    assert host_entries(work_root) - before == set()
    cgroup_tree = sandbox._cgroups
    assert cgroup_tree is None or not any(host_entries(p) for p in cgroup_tree.parents.values())


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroups", "rlimits"])
async def test_a_supervisor_dying_before_the_go_never_lets_the_code_run(
    uid_base: int, marker: str, tmp_path: os.PathLike[str], cgroups: bool, fast_start: bool
) -> None:
    # A worker crashes after the box was made but before the limits were in place and the
    # box was told to go: the code must never start, and the next worker cleans up (finding
    # the box by its cgroup, or without one by its /box). A bubblewrap box stays blocked
    # until then; a zygote's box dies with the zygote, which dies with the worker.
    work_root = os.path.join(tmp_path, "work")
    script = f"""
import asyncio, os, sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from boxkit import spec
from codeexec.adapters.local_sandbox import BubblewrapSandbox, rlimits
rlimits.apply = lambda pid, limits: os._exit(3)
async def main():
    box = BubblewrapSandbox(
        uid_base={uid_base}, uid_count=64, work_root={work_root!r}, use_cgroups={cgroups},
        fast_start={fast_start},
    )
    run = await box.start("doomed", spec("bash", "exec -a {marker} sleep 600", args=("{marker}",)))
    await run.result()
asyncio.run(main())
"""
    worker = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    assert await worker.wait() == 3
    await asyncio.sleep(0.5)
    assert box_processes(uid_base) == []
    if fast_start:
        assert processes_named(marker) == [], "the code ran without its go"
    else:
        assert processes_named(marker), "the unreleased box should still be waiting"
    successor = BubblewrapSandbox(
        uid_base=uid_base, uid_count=64, work_root=work_root, use_cgroups=cgroups
    )
    result = await run(successor, "python", "print('fine')")
    await successor.close()
    assert result.stdout == b"fine\n"
    for _ in range(100):
        if not processes_named(marker):
            break
        await asyncio.sleep(0.01)
    assert host_entries(work_root) == set()
