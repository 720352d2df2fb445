"""What a sandbox keeps on the host (private work dirs, uids of its own, nothing a dead
instance left) and what the box sees of the host (no path, no pid)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from boxkit import UID_COUNT, box_processes, run, spec

from codeexec.adapters.local_sandbox import BubblewrapSandbox
from codeexec.adapters.local_sandbox.workroot import sweep_dead
from codeexec.domain.model import Limits, SourceFile
from codeexec.ports.sandbox import SandboxRun

pytestmark = pytest.mark.integration

NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
READ_AS_ANOTHER_USER = """
import os, sys
for path in sys.argv[1:]:
    try:
        os.listdir(path) if os.path.isdir(path) else open(path, "rb").read()
        print(path, "read")
    except OSError as e:
        print(path, type(e).__name__)
"""


def tree(top: str) -> dict[str, os.stat_result]:
    """Every path under `top` (itself included) with its lstat, as root sees it."""
    found = {top: os.lstat(top)}
    for directory, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(directory, name)
            found[path] = os.lstat(path)
    return found


async def until_ready(
    sandbox: BubblewrapSandbox, sandbox_id: str, code: str, **kw: object
) -> SandboxRun:
    started = await sandbox.start(sandbox_id, spec("python", code, **kw))  # type: ignore[arg-type]
    async for chunk in started.output():
        if b"ready" in chunk.data:
            return started
    raise AssertionError(await started.result())


@pytest.fixture
async def umask_box(
    request: pytest.FixtureRequest, uid_base: int, tmp_path: os.PathLike[str]
) -> AsyncIterator[BubblewrapSandbox]:
    old = os.umask(request.param)
    box = BubblewrapSandbox(
        uid_base=uid_base, uid_count=UID_COUNT, work_root=os.path.join(tmp_path, "work")
    )
    try:
        yield box
    finally:
        await box.close()
        os.umask(old)


def check_private(work_root: str, uids: range) -> None:
    """The run's /box is its uid's alone (0700 dirs, 0600 files), under 0700 dirs of ours,
    at a random name; another local user reads nothing, even naming every path."""
    found = tree(work_root)
    runs = [p for p, st in found.items() if st.st_uid not in (0, os.geteuid())]
    run_dir = min(runs, key=len)  # the only tree the run's uid owns
    uid = found[run_dir].st_uid
    assert uid in uids
    name = os.path.basename(run_dir)
    assert len(name) == 16 and str(os.getpid()) not in name  # random, not pid.counter
    for path in [work_root, os.path.dirname(run_dir)]:  # the root, the instance's dir
        assert stat.S_IMODE(found[path].st_mode) == 0o700, path
    mine = {p: st for p, st in found.items() if p.startswith(run_dir)}
    assert {os.path.relpath(p, run_dir) for p in mine} >= {".", "main.py", "pkg", "made"}
    for path, st in mine.items():
        assert st.st_uid == uid, path
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        assert stat.S_IMODE(st.st_mode) == want, (path, oct(st.st_mode))
    reader = subprocess.run(
        [*NOBODY, "/usr/bin/python3", "-c", READ_AS_ANOTHER_USER, *found],
        capture_output=True,
        text=True,
        check=True,
    )
    outcomes = dict(line.rsplit(" ", 1) for line in reader.stdout.splitlines())
    assert outcomes == dict.fromkeys(found, "PermissionError")


@pytest.mark.parametrize("umask_box", [0o000, 0o077], indirect=True, ids=["umask000", "umask077"])
async def test_work_dirs_are_the_runs_alone_whatever_the_umask(
    umask_box: BubblewrapSandbox,
) -> None:
    code = (
        "import os, pkg.mod\nopen('/box/made', 'w').write('mine')\n"
        "print(pkg.mod.SECRET, len(os.listdir('/etc')) > 3, flush=True)\n"
        "print('ready', flush=True)\nimport time\ntime.sleep(60)\n"
    )
    module = SourceFile(name="pkg/mod.py", content=b"SECRET = 'sources readable'\n")
    run = await until_ready(
        umask_box, "private", code, extra=(module,), limits=Limits(wall_time_s=60)
    )
    try:
        check_private(umask_box._work.path, umask_box.uid_range or range(0))
    finally:
        await umask_box.stop("private")
    result = await run.result()
    assert result.stdout.startswith(b"sources readable True\n"), result


WORKER = """
import asyncio, json, os, sys
sys.path.insert(0, {tests!r})
from boxkit import spec
from codeexec.adapters.local_sandbox import BubblewrapSandbox
from codeexec.adapters.local_sandbox.workroot import sweep_dead
from codeexec.domain.model import Limits, SourceFile
from codeexec.ports.sandbox import SandboxRun
async def main():
    box = BubblewrapSandbox(uid_base={uid_base}, uid_count={uid_count}, work_root={work_root!r})
    secret = SourceFile(name="secret.txt", content={secret!r})
    code = "import os, time; print(f'ready {{os.getuid()}}', flush=True); time.sleep(600)"
    doomed = spec("python", code, extra=(secret,), limits=Limits(wall_time_s=600))
    run = await box.start("doomed", doomed)
    async for chunk in run.output():
        if b"ready" in chunk.data:
            cgroups = list(box._cgroups.parents.values()) if box._cgroups else []
            print(json.dumps([int(chunk.data.split()[1]), cgroups]), flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


def start_worker(
    uid_base: int, work_root: str, secret: bytes
) -> tuple[subprocess.Popen[str], int, list[str]]:
    """A sandbox in another process with one run going; returns it, the run's uid and its
    cgroups. Not reaped once killed: its pid stays taken (a zombie), as if another process
    had it now."""
    script = WORKER.format(
        tests=os.path.dirname(__file__),
        uid_base=uid_base,
        uid_count=UID_COUNT,
        work_root=work_root,
        secret=secret,
    )
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    uid, cgroups = json.loads(worker.stdout.readline())
    return worker, uid, cgroups


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == path or p.startswith(path + "/")]


def kill_leaving_a_zombie(worker: subprocess.Popen[str]) -> None:
    """SIGKILL, and wait until it is dead but not reaped: its pid stays taken."""
    worker.send_signal(signal.SIGKILL)
    os.waitid(os.P_PID, worker.pid, os.WEXITED | os.WNOWAIT)


def existing(paths: list[str]) -> list[str]:
    return [p for p in paths if os.path.exists(p)]


def files_holding(top: str, needle: bytes) -> list[str]:
    hits = []
    for directory, _, files in os.walk(top):
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path) and os.path.isfile(path):
                with open(path, "rb") as f:
                    if needle in f.read():
                        hits.append(path)
    return hits


async def test_a_restart_right_after_kill_9_cleans_what_the_dead_instance_left(
    uid_base: int, tmp_path: os.PathLike[str]
) -> None:
    work_root = os.path.join(tmp_path, "work")
    secret = os.urandom(8).hex().encode()
    worker, _, cgroups = start_worker(uid_base, work_root, secret)
    try:
        left = set(os.listdir(work_root))
        assert files_holding(work_root, secret) and mounts_under(work_root)
        assert existing(cgroups) == cgroups
        kill_leaving_a_zombie(worker)
        successor = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT, work_root=work_root)
        try:
            await successor.prepare()  # a worker's start: nothing has run in it yet
            assert set(os.listdir(work_root)) & left == set()
            assert files_holding(work_root, secret) == []
            own = successor._work._dir
            assert all(p.startswith(own) for p in mounts_under(work_root))
            await until_ready(successor, "first", "print('ready')")  # cgroups: on first use
            assert existing(cgroups) == []
        finally:
            await successor.close()
        assert os.listdir(work_root) == [] and mounts_under(work_root) == []
    finally:
        worker.kill()
        worker.wait()
        sweep_dead(work_root)  # had the test failed early: no mount left behind
    assert box_processes(uid_base) == []


async def test_live_instances_get_disjoint_uids_and_a_dead_ones_range_is_reused(
    uid_base: int, tmp_path: os.PathLike[str]
) -> None:
    work_root = os.path.join(tmp_path, "work")
    worker, worker_uid, _ = start_worker(uid_base, work_root, b"x")
    ours = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT, work_root=work_root)
    successor = None
    try:
        ready = await until_ready(ours, "ours", "import os\nprint('ready', os.getuid())")
        our_uid = int((await ready.result()).stdout.split()[1])
        assert uid_base <= worker_uid < uid_base + UID_COUNT  # the first range: it came first
        assert our_uid in (ours.uid_range or ()) and worker_uid not in (ours.uid_range or ())
        kill_leaving_a_zombie(worker)
        for _ in range(500):  # its boxes die with it, just after it
            if not box_processes(uid_base):
                break
            await asyncio.sleep(0.01)
        successor = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT, work_root=work_root)
        ready = await until_ready(successor, "next", "import os\nprint('ready', os.getuid())")
        next_uid = int((await ready.result()).stdout.split()[1])
        assert uid_base <= next_uid < uid_base + UID_COUNT  # the dead one's range, reclaimed
        assert successor.uid_range == range(uid_base, uid_base + UID_COUNT)
    finally:
        worker.kill()
        worker.wait()
        sweep_dead(work_root)  # had the test failed early: no mount left behind
        await ours.close()
        if successor is not None:
            await successor.close()
    assert os.listdir(work_root) == []


SHOW_PROC = """
import json, os
seen = {}
for path in ["/proc/1/cmdline", "/proc/1/environ", "/proc/self/cmdline", "/proc/self/environ",
             "/proc/self/mountinfo", "/proc/1/mountinfo", "/proc/self/cgroup"]:
    try:
        with open(path, "rb") as f:
            seen[path] = f.read().replace(b"\\0", b" ").decode("utf-8", "replace")
    except OSError as e:
        seen[path] = type(e).__name__
links = []
for fd in os.listdir("/proc/self/fd"):
    try:
        links.append(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        pass  # the listing's own fd, closed by now
seen["fds"] = " ".join(links)
print(json.dumps(seen))
"""


def words(text: str) -> set[str]:
    return set(re.split(r"[^0-9A-Za-z]+", text))


async def test_the_box_shows_no_host_path_and_no_server_pid(
    uid_base: int, tmp_path: os.PathLike[str]
) -> None:
    work_root = os.path.join(tmp_path, "work")
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT, work_root=work_root)
    try:
        result = await run(box, "python", SHOW_PROC)
    finally:
        await box.close()
    seen: dict[str, str] = json.loads(result.stdout)
    assert "/box" in seen["/proc/self/mountinfo"]  # what was read is what we think it is
    host_paths = {os.fspath(tmp_path), work_root, "codeexec-sandbox", sys.prefix, os.getcwd()}
    for name, text in seen.items():
        for host_path in host_paths:
            assert host_path not in text, (name, host_path, text)
    # Where a pid could show: command lines, environments, cgroup names, mount paths.
    mounts = [line.split()[3:5] for line in seen["/proc/self/mountinfo"].splitlines()]
    places = [seen[p] for p in seen if "mountinfo" not in p] + [" ".join(m) for m in mounts]
    assert str(os.getpid()) not in words(" ".join(places))


def plant_legacy_leftovers(work_root: str, secret: bytes) -> str:
    """What a version naming things `<pid>.<n>` left when it died: a tmpfs with a source."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) + 1  # no process ever has it: its owner is dead for sure
    path = os.path.join(work_root, f"{pid}.0")
    os.makedirs(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "codeexec-box", path], check=True)
    with open(os.path.join(path, "main.py"), "wb") as f:
        f.write(secret)
    return path


async def test_leftovers_of_versions_that_named_by_pid_are_swept_too(
    uid_base: int, tmp_path: os.PathLike[str]
) -> None:
    work_root = os.path.join(tmp_path, "work")
    secret = os.urandom(8).hex().encode()
    planted = plant_legacy_leftovers(work_root, secret)
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT, work_root=work_root)
    try:
        await box.prepare()
        assert not existing([planted]) and mounts_under(planted) == []
        assert files_holding(work_root, secret) == []
    finally:
        await box.close()
        sweep_dead(work_root)
