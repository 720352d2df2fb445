"""Runs through the real client, the fake API server and the real launcher (a local process
per pod): output separate and bytes-exact, streamed live, stdin, limits, stages, clean-up."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from k8s_fake_api import FakeKube
from k8s_fixtures import (  # noqa: F401  (fixtures, by name)
    kube_fixture,
    kubelet_fixture,
    make_sandbox_fixture,
    sandbox_fixture,
)
from k8s_specs import SandboxFactory, python

from codeexec.domain.model import RunSpec, SandboxStatus, SourceFile
from codeexec.ports.sandbox import SandboxAlreadyStarted, SandboxRun, UnknownLanguage
from codeexec_kubernetes import KubernetesSandbox, LanguageImage
from codeexec_kubernetes.objects import PayloadTooLarge
from codeexec_kubernetes.run import KubernetesRun


async def finished(run: SandboxRun) -> None:
    await cast(KubernetesRun, run).finished()


async def test_hello_world_keeps_stdout_and_stderr_apart_and_deletes_its_objects(
    sandbox: KubernetesSandbox, kube: FakeKube
) -> None:
    source = (
        "import sys\nprint('héllo')\nsys.stderr.write('oops\\n')\n"
        "sys.stdout.buffer.write(bytes(range(256)))\n"
    )
    run = await sandbox.start("cx-1", python(source))
    result = await run.result()
    assert result.status is SandboxStatus.SUCCEEDED, result.message
    assert result.exit_code == 0
    assert result.stdout == "héllo\n".encode() + bytes(range(256))
    assert result.stderr == b"oops\n"
    await finished(run)
    assert kube.pods() == [] and kube.config_maps() == []
    assert ("pods", "cx-1", 0) in kube.deletes


async def test_output_streams_live_while_the_pod_runs(sandbox: KubernetesSandbox) -> None:
    source = "import time\nprint('first', flush=True)\ntime.sleep(30)\n"
    run = await sandbox.start("cx-live", python(source, wall_time_s=60))
    chunks = run.output().__aiter__()
    seen = b""
    while seen != b"first\n":
        chunk = await asyncio.wait_for(anext(chunks), 10)
        assert (chunk.stream, chunk.stage) == ("stdout", "run")
        seen += chunk.data
    assert not cast(KubernetesRun, run).result_ready
    assert await sandbox.stop("cx-live")
    result = await asyncio.wait_for(run.result(), 10)
    assert result.status is SandboxStatus.CANCELLED
    assert result.stdout == b"first\n"


async def test_stdin_args_and_nested_files_arrive_exactly_without_a_shell(
    sandbox: KubernetesSandbox,
) -> None:
    stdin = bytes(range(256)) * 3
    spec = RunSpec(
        language="python",
        files=(
            SourceFile(name="main.py", content=b"import sys, lib.util as u\nu.run()\n"),
            SourceFile(
                name="lib/util.py",
                content=b"import sys\ndef run():\n"
                b"    sys.stdout.buffer.write(sys.stdin.buffer.read())\n"
                b"    sys.stderr.write(repr(sys.argv[1:]))\n",
            ),
        ),
        stdin=stdin,
        args=("$(touch /tmp/pwned)", "; echo hi", "*"),
    )
    result = await (await sandbox.start("cx-stdin", spec)).result()
    assert result.status is SandboxStatus.SUCCEEDED, result.message
    assert result.stdout == stdin
    assert result.stderr == b"['$(touch /tmp/pwned)', '; echo hi', '*']"


@pytest.mark.parametrize(
    ("source", "limits", "status"),
    [
        ("import sys\nsys.exit(3)", {}, SandboxStatus.RUNTIME_ERROR),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", {}, SandboxStatus.SIGNALED),
        ("import time\ntime.sleep(30)", {"wall_time_s": 0.5}, SandboxStatus.TIME_LIMIT_EXCEEDED),
        (
            "while True: pass",
            {"cpu_time_s": 1, "wall_time_s": 20},
            SandboxStatus.TIME_LIMIT_EXCEEDED,
        ),
    ],
)
async def test_each_ending_gets_its_own_status(
    sandbox: KubernetesSandbox, source: str, limits: dict[str, Any], status: SandboxStatus
) -> None:
    result = await (await sandbox.start("cx-status", python(source, **limits))).result()
    assert result.status is status, result.message
    if status is SandboxStatus.RUNTIME_ERROR:
        assert result.exit_code == 3
    if status is SandboxStatus.SIGNALED:
        assert result.signal == 11 and "SIGSEGV" in result.message


async def test_a_background_process_left_behind_does_not_hold_the_run(
    sandbox: KubernetesSandbox,
) -> None:
    source = "import subprocess\nsubprocess.Popen(['sleep', '30'])\nprint('done')"
    result = await (await sandbox.start("cx-bg", python(source, wall_time_s=20))).result()
    assert result.status is SandboxStatus.SUCCEEDED, result.message
    assert result.stdout == b"done\n"
    assert result.wall_time_s is not None and result.wall_time_s < 10


async def test_output_is_cut_at_the_limit_with_the_flag(sandbox: KubernetesSandbox) -> None:
    source = "import sys\nwhile True: sys.stdout.write('x' * 1000)"
    result = await (await sandbox.start("cx-flood", python(source, output_bytes=5000))).result()
    assert result.status is SandboxStatus.OUTPUT_LIMIT_EXCEEDED, result.message
    assert result.stdout == b"x" * 5000
    assert result.stdout_truncated and not result.stderr_truncated


C_IMAGE = LanguageImage(
    "c",
    "gcc:12",
    "12",
    compile=("gcc", "-o", "main", "{files}"),
    run=("./main",),
    extension=".c",
)


async def test_a_compiled_language_compiles_then_runs(make_sandbox: SandboxFactory) -> None:
    sandbox = await make_sandbox(catalog=(C_IMAGE,))
    ok = RunSpec(
        language="c",
        files=(SourceFile(name="main.c", content=b'#include <stdio.h>\nint main(){puts("hi");}'),),
    )
    result = await (await sandbox.start("cx-c1", ok)).result()
    assert result.status is SandboxStatus.SUCCEEDED, result.message
    assert result.stdout == b"hi\n" and result.compile_output == b""
    broken = RunSpec(language="c", files=(SourceFile(name="main.c", content=b"int main({"),))
    run = await sandbox.start("cx-c2", broken)
    chunks = [c async for c in run.output()]
    result = await run.result()
    assert result.status is SandboxStatus.COMPILATION_ERROR, result.message
    assert result.compile_output and b"error" in result.compile_output
    assert {c.stage for c in chunks} == {"compile"}


async def test_a_sandbox_id_is_never_started_twice(
    sandbox: KubernetesSandbox, make_sandbox: SandboxFactory
) -> None:
    run = await sandbox.start("cx-once", python("import time\ntime.sleep(30)", wall_time_s=60))
    with pytest.raises(SandboxAlreadyStarted):
        await sandbox.start("cx-once", python("print(1)"))
    other = await make_sandbox(worker_id="worker-b")  # another worker process
    with pytest.raises(SandboxAlreadyStarted):
        await other.start("cx-once", python("print(1)"))
    await sandbox.stop("cx-once")
    await run.result()


async def test_unknown_language_and_oversized_payload_create_nothing(
    sandbox: KubernetesSandbox, kube: FakeKube
) -> None:
    with pytest.raises(UnknownLanguage):
        await sandbox.start(
            "cx-x", RunSpec(language="cobol", files=(SourceFile(name="a", content=b""),))
        )
    # 12 MiB: more than the API accepts by default (4 MiB), and than a run's ConfigMaps hold
    with pytest.raises(PayloadTooLarge, match=r"\(12582920 bytes\).* 16 ConfigMaps"):
        await sandbox.start("cx-big", python("print(1)", stdin=b"x" * 12 * 2**20))
    assert kube.pods() == [] and kube.config_maps() == []
