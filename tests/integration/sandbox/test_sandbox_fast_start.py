"""The fast start: a box forked from the zygote is what a cold bubblewrap box is, to the code.

The same observing program runs both ways; everything it can see of its start (argv,
`__main__`, sys.path, flags, environment, stdin, limits, fds, umask, cwd, ids, capabilities,
seccomp, signals, mounts...) must be equal. And the zygote itself never runs code: every
run gets a new process, new namespaces and a new work dir."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from boxkit import UID_COUNT, box_processes, host_entries, run, spec

from codeexec.adapters.local_sandbox import BubblewrapSandbox
from codeexec.adapters.local_sandbox.boxpool import BoxPool
from codeexec.adapters.local_sandbox.cgroup_run import RunCgroup
from codeexec.domain.model import Limits, SandboxStatus

pytestmark = pytest.mark.integration

OBSERVE = (Path(__file__).parent / "observe.py").read_text()
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


@pytest.fixture
async def both(uid_base: int) -> AsyncIterator[tuple[BubblewrapSandbox, BubblewrapSandbox]]:
    fast = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT // 2)
    cold = BubblewrapSandbox(
        uid_base=uid_base + UID_COUNT // 2, uid_count=UID_COUNT // 2, fast_start=False
    )
    await fast.prepare()
    yield fast, cold
    await fast.close()
    await cold.close()
    assert box_processes(uid_base) == []


def _normalised(result_stdout: bytes, uid: int) -> dict[str, object]:
    text = _ADDRESS.sub(" at ADDR", result_stdout.decode())
    text = re.sub(rf"\b{uid}\b", "4242424242", text)  # a number: it stands in JSON numbers too
    seen: dict[str, object] = json.loads(text)
    # Names the host picks at random per run (cgroup paths) are compared by shape.
    seen["cgroup"] = [re.sub(r"[0-9a-f]{16}(\.\w+)?", "ID", c) for c in seen["cgroup"]]  # type: ignore[union-attr]
    return seen


async def _observe(box: BubblewrapSandbox, **kw: object) -> dict[str, object]:
    result = await run(box, "python", OBSERVE, **kw)
    assert result.status is SandboxStatus.SUCCEEDED, (result.message, result.stderr)
    uid = json.loads(result.stdout)["ids"][0][0]
    return _normalised(result.stdout, uid)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"stdin": b"line one\nline two\n", "args": ("an arg", "--flag", "")},
        {"limits": Limits(open_files=64, file_size_bytes=12345, processes=7)},
    ],
    ids=["plain", "stdin-and-args", "other-limits"],
)
async def test_a_forked_start_sees_what_a_cold_start_sees(
    both: tuple[BubblewrapSandbox, BubblewrapSandbox], kw: dict[str, object]
) -> None:
    fast, cold = both
    seen_fast, seen_cold = await _observe(fast, **kw), await _observe(cold, **kw)
    assert fast._fast is not None and fast._fast.pool is not None
    assert fast._fast.pool.taken >= 1, "the run did not go through the zygote"
    differing = {k for k in seen_cold if seen_fast.get(k) != seen_cold[k]}
    assert not differing, {k: (seen_fast.get(k), seen_cold[k]) for k in differing}
    assert seen_fast.keys() == seen_cold.keys()


async def test_an_execd_runtime_sees_what_a_cold_start_sees(
    both: tuple[BubblewrapSandbox, BubblewrapSandbox],
) -> None:
    # Other runtimes exec in the same kind of box: their view of the process must match too.
    fast, cold = both
    code = (
        "grep -E '^(Cap|NoNewPrivs|Seccomp|Sig(Blk|Ign))' /proc/self/status\n"
        "id; umask; pwd; ulimit -a; env | sort; ls -l /proc/self/fd | tail -n +2 | wc -l\n"
        "tr '\\0' ' ' < /proc/self/cmdline; echo; cat /etc/hostname 2>&1; hostname\n"
    )
    outputs = []
    for box in (fast, cold):
        result = await run(box, "bash", code, stdin=b"input\n", args=("x",))
        assert result.status is SandboxStatus.SUCCEEDED, result.stderr
        text = result.stdout.decode()
        uid = re.search(r"uid=(\d+)", text)
        assert uid is not None, text
        outputs.append(re.sub(rf"\b{uid.group(1)}\b", "UID", text))
    assert outputs[0] == outputs[1]


async def test_every_run_is_a_new_process_in_new_namespaces(uid_base: int) -> None:
    # Runs alive at the same time: any namespace, file system or process shared between
    # them would show the same id (ids are only unique among things that exist at once).
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT)
    code = (
        "import os, time\n"
        "print(os.getpid(), *(os.readlink(f'/proc/self/ns/{n}') for n in"
        " ('pid', 'net', 'mnt', 'ipc', 'uts', 'cgroup')), os.stat('/box').st_dev,"
        " os.stat('/tmp').st_dev, os.stat('/dev/shm').st_dev, flush=True)\n"
        "time.sleep(1.5)\n"
    )
    try:
        results = await asyncio.gather(*(run(box, "python", code) for _ in range(4)))
    finally:
        await box.close()
    seen = [r.stdout.split() for r in results]
    assert all(s[0] == b"2" for s in seen), seen  # each the second process of its own box
    for column in range(1, len(seen[0])):
        values = [s[column] for s in seen]
        assert len(set(values)) == len(values), f"shared between runs: {values}"


async def test_the_zygote_never_runs_code_and_forgets_itself(uid_base: int) -> None:
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT)
    await box.prepare()
    assert box._fast is not None and box._fast.zygote is not None
    zygote = box._fast.zygote.pid
    code = (
        "import os, sys\n"
        "print(sorted(m for m in sys.modules if 'zygote' in m or m == 'sitecustomize'))\n"
        "print([p for p in sys.path if 'zygote' in p], 'PYTHONPATH' in os.environ)\n"
        "status = open('/proc/self/status').read()\n"
        "print(os.getuid() != 0, status.count('CapEff:\\t0000000000000000'))\n"
    )
    try:
        result = await run(box, "python", code)
        assert _uid_of(zygote) == 0  # still root: it never dropped to a run's uid
    finally:
        await box.close()
    assert result.stdout == b"[]\n[] False\nTrue 1\n", result.stderr


async def pooled(uid_base: int, pool_size: int) -> tuple[BubblewrapSandbox, BoxPool]:
    """A sandbox with its zygote started and its pool of prepared boxes."""
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT, pool_size=pool_size)
    await box.prepare()
    assert box._fast is not None and box._fast.pool is not None
    return box, box._fast.pool


async def test_a_pool_box_serves_one_run_then_is_gone(uid_base: int) -> None:
    box, pool = await pooled(uid_base, 2)
    for _ in range(50):
        if pool.waiting() and all(b.ready for b in pool.waiting()):
            break
        await asyncio.sleep(0.02)
    waiting = pool.waiting()[0]
    init = await waiting.init_pid()
    try:
        started = await box.start(uuid.uuid4().hex, spec("python", "print('hi')"))
        assert (await started.result()).stdout == b"hi\n"
        await started.finished()
        for _ in range(200):
            if not _exists(f"/proc/{init}"):
                break
            await asyncio.sleep(0.01)
        assert not _exists(f"/proc/{init}"), "the used box outlived its run"
        assert waiting not in pool.waiting()
        assert not _exists(waiting.workspace.path)
    finally:
        await box.close()
    assert pool.waiting() == []


async def test_a_taken_box_is_replaced_when_its_run_ends_not_while_it_runs(
    uid_base: int,
) -> None:
    # Making a box takes a core for several ms: not from the run that took the last one.
    box, pool = await pooled(uid_base, 2)
    for _ in range(100):
        if len(pool.waiting()) == 1 and pool.waiting()[0].ready:
            break
        await asyncio.sleep(0.02)
    try:
        code = "import time\ntime.sleep(0.6)\nprint('hi')"
        started = await box.start(uuid.uuid4().hex, spec("python", code))
        await asyncio.sleep(0.3)
        assert pool.waiting() == [], "a replacement was made while the run was going"
        assert (await started.result()).stdout == b"hi\n"
        await started.finished()
        assert len(pool.waiting()) == 1, "no replacement after the run ended"
        assert pool.misses == 0
    finally:
        await box.close()


async def test_the_code_process_is_limited_by_the_run_cgroup_however_late_it_is_joined(
    uid_base: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The box's code process is forked before the go, so it must be forked inside the
    # cgroup, even when the supervisor puts the box's pid 1 there late (a busy event loop):
    # a process forked before the join would stay outside, with no limit of the run.
    join = RunCgroup.join

    def late_join(self: RunCgroup, pid: int) -> None:
        time.sleep(0.05)
        join(self, pid)

    monkeypatch.setattr(RunCgroup, "join", late_join)
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT)
    code = "hog = b'x' * (96 * 2**20)\nprint('allocated')"
    try:
        result = await run(box, "python", code, limits=Limits(memory_bytes=48 * 2**20))
        assert box._fast is not None and box._fast.pool is not None
        assert box._fast.pool.taken >= 1, "the run did not go through the zygote"
    finally:
        await box.close()
    assert result.status is SandboxStatus.MEMORY_LIMIT_EXCEEDED, result
    assert result.memory_bytes is not None and result.memory_bytes > 0


async def test_closing_while_boxes_are_being_made_does_not_wait_for_them(
    uid_base: int,
) -> None:
    box, _ = await pooled(uid_base, 4)
    # Four at once: the fourth finds no box waiting, so the pool makes more right away,
    # and they are still being made when the sandbox closes.
    code = "print('hi')"
    results = await asyncio.gather(*(run(box, "python", code) for _ in range(4)))
    assert [r.stdout for r in results] == [b"hi\n"] * 4
    t0 = time.monotonic()
    await box.close()
    assert time.monotonic() - t0 < 5, "close waited for boxes being made (their ready)"


async def test_a_compiled_run_uses_two_boxes_on_one_work_dir(uid_base: int) -> None:
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT)
    code = '#include <stdio.h>\nint main(void) { FILE *f = fopen("/proc/self/status", "r");'
    code += " char l[256]; while (fgets(l, 256, f)) if (l[0] == 'N' && l[1] == 'S')"
    code += " fputs(l, stdout); return 0; }\n"
    try:
        started = await box.start(uuid.uuid4().hex, spec("c", code))
        result = await started.result()
        await started.finished()
        assert box._fast is not None and box._fast.pool is not None
        assert box._fast.pool.taken == 1  # the compile's; the run's was made on its work dir
    finally:
        await box.close()
    assert result.status is SandboxStatus.SUCCEEDED, (result.message, result.compile_output)
    assert b"NSpid:\t2\n" in result.stdout, result.stdout  # the run stage in a box of its own


async def test_the_fast_start_keeps_working_after_the_zygote_dies(uid_base: int) -> None:
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT)
    await box.prepare()
    assert box._fast is not None and box._fast.zygote is not None
    pid = box._fast.zygote.pid
    assert pid is not None
    os.kill(pid, 9)
    try:
        for _ in range(3):
            result = await run(box, "python", "print('still here')")
            if result.status is SandboxStatus.SUCCEEDED:
                break
        assert result.stdout == b"still here\n", (result.status, result.message)
        assert box._fast.zygote is not None and box._fast.zygote.pid != pid
    finally:
        await box.close()
    # The dead zygote's waiting boxes went with it; what the host made for them is gone too.
    tree = box._cgroups
    assert tree is None or not any(host_entries(p) for p in tree.parents.values())


def _exists(path: str) -> bool:
    return os.path.exists(path)


def _uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("Uid:"))
    return int(line.split()[1])


async def test_a_host_where_boxes_cannot_be_forked_falls_back_to_bubblewrap(
    uid_base: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A zygote whose boxes fail to build their root (here: an operation it does not know)
    # must not fail the runs: the sandbox says why and uses bubblewrap per stage instead.
    from codeexec.adapters.local_sandbox import bubblewrap

    real_ops = bubblewrap.box_ops

    def broken_ops(**kw: object) -> list[tuple[str, ...]]:
        return [*real_ops(**kw), ("no-such-operation", "/")]  # type: ignore[arg-type]

    monkeypatch.setattr(bubblewrap, "box_ops", broken_ops)
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT)
    try:
        results = [await run(box, "python", "print('ran')") for _ in range(4)]
    finally:
        await box.close()
    assert all(r.stdout == b"ran\n" for r in results), [r.message for r in results]
    assert box._fast_failures == 3 and not box._fast_possible()
    assert "unknown box operation 'no-such-operation'" in caplog.text


async def test_listing_languages_starts_nothing(uid_base: int) -> None:
    """An API process lists languages to check submissions; it runs no code, so it claims
    no uids and starts no zygote (the worker's `prepare` does)."""
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT)
    try:
        assert await box.languages()
        assert box._fast is None and box.uid_range is None
    finally:
        await box.close()


def _private_kib(pid: int) -> int:
    """What a process holds of its own: its private pages, clean and dirty (KiB)."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    fields = dict(line.split(":", 1) for line in rollup.splitlines()[1:])
    return sum(int(fields[f].split()[0]) for f in ("Private_Clean", "Private_Dirty"))


async def _waiting_code_process(pool: BoxPool) -> tuple[bool, int]:
    """The next waiting box, once ready: whether it was asked to copy its pages ahead, and
    what its code process holds of its own."""
    for _ in range(250):
        waiting = [b for b in pool.waiting() if b.ready]
        if waiting and len(waiting[0].memory_pids()) == 2:
            box = waiting[0]
            return box.prefault, _private_kib(box.memory_pids()[1])
        await asyncio.sleep(0.02)
    raise AssertionError("no box became ready")


async def test_boxes_copy_their_pages_ahead_only_while_python_runs_in_the_zygote(
    uid_base: int,
) -> None:
    """The copy ahead saves a Python run in the zygote its copy-on-write faults; a runtime
    it execs (Node here) discards the pages, so copying them was CPU for nothing. The pool
    copies them only while most boxes taken lately ran Python in the zygote."""
    box, pool = await pooled(uid_base, 1)
    try:
        prefault, python_ready = await _waiting_code_process(pool)
        assert prefault and pool.prefault  # before any run: Python is expected
        for _ in range(2):
            result = await run(box, "javascript", "console.log('hi')")
            assert result.stdout == b"hi\n", result
        assert not pool.prefault
        prefault, execs_ready = await _waiting_code_process(pool)
        assert not prefault
        for _ in range(3):
            assert (await run(box, "python", "print('hi')")).stdout == b"hi\n"
        assert pool.prefault
        prefault, again = await _waiting_code_process(pool)
        assert prefault
    finally:
        await box.close()
    # The copy is real: a box that copied holds megabytes of its own that one that did not
    # leaves shared with the zygote.
    assert python_ready > execs_ready + 1024 and again > execs_ready + 1024, (
        python_ready,
        execs_ready,
        again,
    )
