"""Hostile programs: each ends with the status it earned, and nothing escapes or survives."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from boxkit import (
    box_processes,
    host_entries,
    processes_named,
    read_host_file,
    run,
    spec,
    write_host_file,
)

from codeexec.adapters.local_sandbox import BubblewrapSandbox
from codeexec.domain.model import Limits, SandboxStatus

pytestmark = pytest.mark.integration

FAST = Limits(wall_time_s=2, cpu_time_s=1, processes=16, memory_bytes=64 * 2**20)


async def peak_processes(uid_base: int, until: asyncio.Future[object]) -> int:
    peak = 0
    while not until.done():
        peak = max(peak, len(box_processes(uid_base)))
        await asyncio.sleep(0.02)
    return peak


async def test_fork_bomb_is_capped_and_dies_at_the_deadline(
    sandbox: BubblewrapSandbox, uid_base: int
) -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    # Sixteen interpreters touch 50-64 MiB between them: with FAST's 64 MiB the OOM killer
    # sometimes ends the bomb first (a true verdict, but not what this test is about).
    roomy = FAST.model_copy(update={"memory_bytes": 256 * 2**20})
    result_task = asyncio.ensure_future(run(sandbox, "python", code, limits=roomy))
    peak = await peak_processes(uid_base, result_task)
    result = await result_task
    assert result.status is SandboxStatus.TIME_LIMIT_EXCEEDED
    assert 1 <= peak <= FAST.processes
    assert box_processes(uid_base) == []


async def test_memory_bomb_is_oom_killed_under_the_limit(sandbox: BubblewrapSandbox) -> None:
    code = "hog = []\nwhile True:\n    hog.append(bytearray(8 * 2**20))\n"
    result = await run(sandbox, "python", code, limits=FAST)
    assert result.status is SandboxStatus.MEMORY_LIMIT_EXCEEDED
    assert result.memory_bytes is not None and result.memory_bytes <= FAST.memory_bytes
    assert result.signal == 9


@pytest.mark.parametrize("mib", [1, 2])
async def test_a_limit_below_what_the_runtime_needs_is_exceeded_not_an_error(
    sandbox: BubblewrapSandbox, uid_base: int, mib: int
) -> None:
    # A box prepared ahead already holds the interpreter's pages when its limit is set (the
    # kernel refuses a cgroup v1 limit below that usage); a cold start runs out while the
    # interpreter starts. Both are the run's memory limit, and nothing may be left behind.
    result = await run(sandbox, "python", "print('hi')", limits=Limits(memory_bytes=mib * 2**20))
    assert result.status is SandboxStatus.MEMORY_LIMIT_EXCEEDED, (result.status, result.stderr)
    assert box_processes(uid_base) == []


async def test_infinite_loop_is_stopped_by_the_cpu_limit(sandbox: BubblewrapSandbox) -> None:
    limits = Limits(wall_time_s=10, cpu_time_s=1)
    result = await run(sandbox, "python", "while True:\n    pass\n", limits=limits)
    assert result.status is SandboxStatus.TIME_LIMIT_EXCEEDED
    assert "CPU" in result.message
    # The cgroup's exact count is the limit (the kernel's tick-sampled RLIMIT_CPU, a second
    # later, only backs it up): a run stopped for CPU has used at least its limit.
    assert result.cpu_time_s is not None and 1 <= result.cpu_time_s < 3
    assert result.wall_time_s is not None and result.wall_time_s < limits.wall_time_s


async def test_cpu_limit_counts_the_whole_tree(sandbox: BubblewrapSandbox) -> None:
    # Four busy processes of 0.6 s each stay under a per-process 1 s RLIMIT_CPU; the tree's
    # total does not.
    code = (
        "import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        break\n"
        "end = time.process_time() + 0.6\nwhile time.process_time() < end:\n    pass\n"
        "time.sleep(30)\n"
    )
    result = await run(sandbox, "python", code, limits=Limits(wall_time_s=10, cpu_time_s=1))
    assert result.status is SandboxStatus.TIME_LIMIT_EXCEEDED
    assert result.wall_time_s is not None and result.wall_time_s < 5


async def test_sleeping_past_the_deadline_is_killed_at_the_wall_limit(
    sandbox: BubblewrapSandbox,
) -> None:
    result = await run(
        sandbox, "python", "import time\ntime.sleep(60)\n", limits=Limits(wall_time_s=1)
    )
    assert result.status is SandboxStatus.TIME_LIMIT_EXCEEDED
    assert result.wall_time_s is not None and 1 <= result.wall_time_s < 2


async def test_stopped_processes_do_not_outlive_the_wall_limit(
    sandbox: BubblewrapSandbox, uid_base: int, marker: str
) -> None:
    code = f"(exec -a {marker} sleep 600) &\nsleep 0.1\nkill -STOP 0\nkill -STOP $$\n"
    started = time.monotonic()
    result = await run(sandbox, "bash", code, limits=Limits(wall_time_s=1))
    assert result.status is SandboxStatus.TIME_LIMIT_EXCEEDED
    assert time.monotonic() - started < 3
    assert box_processes(uid_base) == [] and processes_named(marker) == []


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_output_flood_is_truncated_exactly_at_the_limit(
    sandbox: BubblewrapSandbox, stream: str
) -> None:
    code = f"import sys\nwhile True:\n    sys.{stream}.write('x' * 65536)\n"
    result = await run(sandbox, "python", code, limits=Limits(output_bytes=100_000))
    assert result.status is SandboxStatus.OUTPUT_LIMIT_EXCEEDED
    out = getattr(result, stream)
    assert out == b"x" * 100_000
    assert getattr(result, f"{stream}_truncated") is True


async def test_huge_file_is_stopped_at_the_file_size_limit(sandbox: BubblewrapSandbox) -> None:
    limits = Limits(file_size_bytes=2**20)
    result = await run(sandbox, "bash", "exec head -c 50000000 /dev/zero > big\n", limits=limits)
    assert result.status is SandboxStatus.OUTPUT_LIMIT_EXCEEDED
    assert "file size" in result.message
    code = (
        "import os\ntry:\n    with open('big', 'wb') as f:\n        f.write(bytes(5 * 2**20))\n"
        "except OSError as e:\n    print(e.strerror, os.path.getsize('big'))\n"
    )
    result = await run(sandbox, "python", code, limits=limits)
    assert result.stdout == f"File too large {2**20}\n".encode()


async def test_work_dir_is_size_limited(sandbox: BubblewrapSandbox) -> None:
    code = (
        "import os\nwritten = 0\ntry:\n    for i in range(200):\n"
        "        with open(f'f{i}', 'wb') as f:\n            f.write(bytes(2**20))\n"
        "        written += 2**20\nexcept OSError as e:\n    print(e.strerror, written)\n"
    )
    result = await run(sandbox, "python", code, limits=Limits(memory_bytes=512 * 2**20))
    reason, written = result.stdout.decode().rsplit(" ", 1)
    assert reason == "No space left on device"
    assert int(written) <= 64 * 2**20


async def test_network_is_unreachable_loopback_and_outside(sandbox: BubblewrapSandbox) -> None:
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    code = (
        "import errno, socket, json\nout = {}\n"
        f"for name, addr in [('loopback', ('127.0.0.1', {port})), ('outside', ('1.1.1.1', 53)),"
        " ('dns', None)]:\n    try:\n        if addr is None:\n"
        "            socket.getaddrinfo('example.com', 80)\n        else:\n"
        "            socket.create_connection(addr, timeout=2).close()\n"
        "        out[name] = 'connected'\n    except OSError as e:\n"
        "        out[name] = [type(e).__name__, errno.errorcode.get(e.errno)]\n"
        "print(json.dumps(out))\n"
    )
    async with server:
        result = await run(sandbox, "python", code)
    outcome = json.loads(result.stdout)
    # No IP socket can even be made (seccomp); the namespace has no route out either.
    assert outcome["loopback"] == ["OSError", "EAFNOSUPPORT"]
    assert outcome["outside"] == ["OSError", "EAFNOSUPPORT"]
    assert outcome["dns"][0] == "gaierror"
    assert connections == 0


async def test_host_files_are_invisible_or_unreadable(
    sandbox: BubblewrapSandbox, tmp_path: os.PathLike[str]
) -> None:
    secret = os.path.join(tmp_path, "host-secret")
    write_host_file(secret, "s3cret", 0o644)  # world-readable on the host, yet not in the box
    paths = [
        secret,
        "/etc/shadow",
        "/etc/ssh",
        "/work",
        "/home",
        os.getcwd(),
        "/proc/1/environ",
        "/sys/fs/cgroup",
        "/var/run/docker.sock",
        "/root/.bash_history",
    ]
    code = (
        "import os, sys\nfor p in sys.argv[1:]:\n    try:\n"
        "        print(p, os.listdir(p) if os.path.isdir(p) else open(p).read()[:20])\n"
        "    except OSError as e:\n        print(p, type(e).__name__)\n"
        "print(sorted(os.listdir('/root')) if os.path.isdir('/root') else [])\n"
    )
    result = await run(sandbox, "python", code, args=tuple(paths))
    *lines, root = result.stdout.decode().splitlines()
    assert len(lines) == len(paths)
    for line in lines:
        assert line.split(" ", 1)[1] in ("FileNotFoundError", "PermissionError"), line
    assert set(eval(root)) <= {".pyenv", ".rustup", ".cargo"}  # only runtimes, bound read-only
    assert b"s3cret" not in result.stdout


async def test_runs_cannot_see_each_other(sandbox: BubblewrapSandbox, marker: str) -> None:
    writer = await sandbox.start(
        "writer",
        spec(
            "bash",
            f"echo x > /box/{marker}; echo x > /tmp/{marker}; echo ready; sleep 30",
            limits=Limits(wall_time_s=20),
        ),
    )
    async for chunk in writer.output():
        if b"ready" in chunk.data:
            break
    code = (
        "import os, sys\nhits = []\n"
        "for top in sorted(set(os.listdir('/')) - {'proc', 'usr', 'sys'}) + ['dev/shm']:\n"
        "    for d, _, files in os.walk('/' + top):\n"
        "        hits += [os.path.join(d, f) for f in files if sys.argv[1] in f]\n"
        "print(hits, sorted(os.listdir('/tmp')))\n"
    )
    result = await run(sandbox, "python", code, args=(marker,))
    await sandbox.stop("writer")
    assert (await writer.result()).status is SandboxStatus.CANCELLED
    assert result.stdout == b"[] []\n"


async def test_planted_symlinks_are_never_followed_by_the_host(
    uid_base: int, tmp_path: os.PathLike[str]
) -> None:
    victim = os.path.join(tmp_path, "victim")
    os.mkdir(victim)
    write_host_file(os.path.join(victim, "keep"), "keep me")
    code = (
        f"ln -s {victim} /box/dir-link\nln -s {victim}/keep /box/file-link\n"
        f"mkdir -p /box/deep/er && ln -s / /box/deep/er/root\nln -s /etc/passwd /tmp/x\n"
        f"cat /box/file-link; echo rc=$?\n"
    )
    for mount in (True, False):
        box = BubblewrapSandbox(uid_base=uid_base, uid_count=64, mount_workspace=mount)
        try:
            result = await run(box, "bash", code)
        finally:
            await box.close()
        assert b"rc=1" in result.stdout
        assert read_host_file(os.path.join(victim, "keep")) == "keep me"
        assert host_entries(victim) == {"keep"}


async def test_proc_shows_only_the_run(sandbox: BubblewrapSandbox) -> None:
    code = (
        "import os\npids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "cmds = [open(f'/proc/{p}/cmdline', 'rb').read() for p in pids]\n"
        "print(len(pids), any(b'pytest' in c for c in cmds))\n"
        "try:\n    open('/proc/sysrq-trigger', 'w').write('h')\n"
        "except OSError as e:\n    print(type(e).__name__)\n"
    )
    result = await run(sandbox, "python", code)
    count, saw_host, denied = result.stdout.decode().split()
    assert int(count) <= 3 and saw_host == "False"
    assert denied in ("PermissionError", "FileNotFoundError")


async def test_host_environment_never_reaches_the_code(
    sandbox: BubblewrapSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEEXEC_HOST_SECRET", "hunter2")
    code = (
        "import os\nprint(sorted(os.environ))\n"
        "print(b'hunter2' in open('/proc/self/environ', 'rb').read())\n"
    )
    result = await run(sandbox, "python", code)
    names, leaked = result.stdout.decode().splitlines()
    assert "CODEEXEC_HOST_SECRET" not in names and leaked == "False"
    assert set(eval(names)) <= {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "USER",
        "LOGNAME",
        "PWD",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "LC_CTYPE",
    }


async def test_orphaned_background_processes_do_not_survive(
    sandbox: BubblewrapSandbox, uid_base: int, marker: str
) -> None:
    code = (
        f"import subprocess, os\nfor _ in range(3):\n"
        f"    subprocess.Popen(['{marker}', '600'], executable='/bin/sleep',"
        f" start_new_session=True)\n"
        f"if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', ['{marker}', '600'])\n    os._exit(0)\n"
        f"print('bye')\n"
    )
    started = time.monotonic()
    result = await run(sandbox, "python", code)
    assert result.status is SandboxStatus.SUCCEEDED and result.stdout == b"bye\n"
    assert time.monotonic() - started < 5
    assert processes_named(marker) == [] and box_processes(uid_base) == []


async def test_the_code_cannot_kill_its_supervisor(sandbox: BubblewrapSandbox) -> None:
    code = (
        f"kill -9 1 2>&1; echo init=$?\nkill -9 {os.getpid()} 2>&1; echo host=$?\n"
        "kill -9 $PPID 2>&1; echo parent=$?\nsleep 60 &\nkill -9 -1; wait $!; echo all=$?\n"
        "kill -9 $$\n"
    )
    result = await run(sandbox, "bash", code)
    for attempt in (b"init=1", b"host=1", b"parent=1", b"all=137"):
        assert attempt in result.stdout
    assert result.status is SandboxStatus.SIGNALED and result.signal == 9
    again = await run(sandbox, "python", "print('still here')")
    assert again.status is SandboxStatus.SUCCEEDED and again.stdout == b"still here\n"


async def test_the_code_runs_unprivileged_with_nothing_to_escalate(
    sandbox: BubblewrapSandbox, uid_base: int
) -> None:
    code = (
        "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status\n"
        "unshare -U true 2>/dev/null; echo unshare=$?\n"
        'python3 -c \'import ctypes; print("mount=%d" % ctypes.CDLL(None).mount('
        'b"x", b"/tmp", b"tmpfs", 0, None))\'\n'
    )
    result = await run(sandbox, "bash", code)
    lines = result.stdout.decode().split("\n")
    assert uid_base <= int(lines[0]) < uid_base + 64
    assert "CapEff:\t0000000000000000" in lines and "CapBnd:\t0000000000000000" in lines
    assert "NoNewPrivs:\t1" in lines and "Seccomp:\t2" in lines
    assert "unshare=1" in lines and "mount=-1" in lines
