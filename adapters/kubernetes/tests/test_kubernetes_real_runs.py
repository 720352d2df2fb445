"""Runs through the real client, the fake API server and the real launcher (a local process
per pod): output separate and bytes-exact, streamed live, stdin, limits, and clean-up."""

from __future__ import annotations

import asyncio

from fake_kube import FakeKube
from specs import python

from codeexec.domain.model import SandboxStatus
from codeexec_kubernetes import KubernetesSandbox


async def test_hello_world_keeps_stdout_and_stderr_apart_and_deletes_its_objects(
    sandbox: KubernetesSandbox, kube: FakeKube
) -> None:
    source = "import sys\nprint('héllo')\nsys.stderr.write('oops\\n')\nsys.stdout.buffer.write(bytes(range(256)))\n"
    run = await sandbox.start("cx-1", python(source))
    result = await run.result()
    assert result.status is SandboxStatus.SUCCEEDED, result.message
    assert result.exit_code == 0
    assert result.stdout == "héllo\n".encode() + bytes(range(256))
    assert result.stderr == b"oops\n"
    await sandbox.runs.get("cx-1", run).finished()  # type: ignore[attr-defined]
    assert kube.pods() == [] and kube.config_maps() == []
