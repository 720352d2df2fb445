"""Pods played by hand (phases, container states, log frames): every status comes from what
the API says, and no run waits forever for a pod that will not start."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from k8s_fake_api import FakeKube, PodLog
from k8s_fake_kubelet import FakeKubelet
from k8s_fixtures import (  # noqa: F401  (fixtures, by name)
    kube_fixture,
    kubelet_fixture,
    make_sandbox_fixture,
    sandbox_fixture,
)
from k8s_specs import Frames, python

from codeexec.domain.model import RunResult, SandboxStatus
from codeexec_kubernetes import KubernetesSandbox

NAME = "cx-played"


def container(state: dict[str, Any]) -> dict[str, Any]:
    return {"containerStatuses": [{"name": "sandbox", "state": state}]}


def running() -> dict[str, Any]:
    return {"phase": "Running", **container({"running": {"startedAt": "2026-01-01T00:00:00Z"}})}


def terminated(code: int, why: str, phase: str = "Failed", **pod: str) -> dict[str, Any]:
    state = {"terminated": {"exitCode": code, "reason": why}}
    return {"phase": phase, **container(state), **pod}


async def started(sandbox: KubernetesSandbox, kube: FakeKube, kubelet: FakeKubelet) -> Any:
    kubelet.manual = True
    run = await sandbox.start(NAME, python("print(1)"))
    assert kube.pod(NAME) is not None
    return run


async def result_of(run: Any) -> RunResult:
    result: RunResult = await asyncio.wait_for(run.result(), 10)
    await asyncio.wait_for(run.finished(), 10)  # its objects deleted
    return result


async def test_oom_killed_container_is_memory_limit_exceeded(
    sandbox: KubernetesSandbox, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    run = await started(sandbox, kube, kubelet)
    frames = Frames()
    kube.set_status(NAME, running())
    kube.append_log(NAME, frames.out(b"allocating\n"))
    await asyncio.sleep(0.1)
    kube.set_status(NAME, terminated(137, "OOMKilled"))
    kube.close_log(NAME)
    result = await result_of(run)
    assert result.status is SandboxStatus.MEMORY_LIMIT_EXCEEDED, result.message
    assert result.stdout == b"allocating\n"
    assert kube.pods() == []


async def test_pod_deadline_is_time_limit_exceeded(
    sandbox: KubernetesSandbox, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    run = await started(sandbox, kube, kubelet)
    kube.set_status(NAME, running())
    message = "Pod was active on the node longer than the specified deadline"
    kube.set_status(NAME, terminated(137, "Error", reason="DeadlineExceeded", message=message))
    kube.close_log(NAME)
    result = await result_of(run)
    assert result.status is SandboxStatus.TIME_LIMIT_EXCEEDED
    assert "deadline" in result.message


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull", "InvalidImageName"])
async def test_image_that_cannot_be_pulled_is_an_internal_error_with_the_message(
    sandbox: KubernetesSandbox, kube: FakeKube, kubelet: FakeKubelet, reason: str
) -> None:
    run = await started(sandbox, kube, kubelet)
    waiting = {"waiting": {"reason": reason, "message": "manifest for nope:1 not found"}}
    kube.set_status(NAME, {"phase": "Pending", **container(waiting)})
    result = await result_of(run)
    assert result.status is SandboxStatus.INTERNAL_ERROR
    assert reason in result.message and "manifest for nope:1 not found" in result.message
    assert kube.pods() == []


async def test_unschedulable_pod_fails_after_its_allowance(
    sandbox: KubernetesSandbox, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    run = await started(sandbox, kube, kubelet)
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient memory.",
    }
    kube.set_status(NAME, {"phase": "Pending", "conditions": [condition]})
    result = await result_of(run)  # unschedulable_s is 0.3 in the tests
    assert result.status is SandboxStatus.INTERNAL_ERROR
    assert "unschedulable" in result.message and "Insufficient memory" in result.message


async def test_pod_that_never_starts_fails_at_the_start_timeout(
    make_sandbox: Any, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    sandbox = await make_sandbox(start_timeout_s=0.5)
    run = await started(sandbox, kube, kubelet)
    result = await result_of(run)
    assert result.status is SandboxStatus.INTERNAL_ERROR
    assert "did not start within 0.5s" in result.message
    assert kube.pods() == []


async def test_launcher_that_dies_without_a_report_is_an_internal_error(
    sandbox: KubernetesSandbox, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    run = await started(sandbox, kube, kubelet)
    kube.set_status(NAME, running())
    kube.append_log(NAME, b"Traceback: launcher broke\n")
    kube.set_status(NAME, terminated(1, "Error"))
    kube.close_log(NAME)
    result = await result_of(run)
    assert result.status is SandboxStatus.INTERNAL_ERROR
    assert "without a report" in result.message and "launcher broke" in result.message


async def test_pod_deleted_by_someone_else_is_an_internal_error(
    sandbox: KubernetesSandbox, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    run = await started(sandbox, kube, kubelet)
    kube.set_status(NAME, running())
    kube.remove("pods", NAME)
    result = await result_of(run)
    assert result.status is SandboxStatus.INTERNAL_ERROR
    assert "deleted outside codeexec" in result.message


async def test_cancel_deletes_the_pod_at_once(
    sandbox: KubernetesSandbox, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    run = await started(sandbox, kube, kubelet)
    kube.set_status(NAME, running())
    assert await sandbox.stop(NAME)
    result = await result_of(run)
    assert result.status is SandboxStatus.CANCELLED
    assert ("pods", NAME, 0) in kube.deletes
    assert not await sandbox.stop(NAME)


async def test_a_dropped_log_stream_resumes_without_losing_or_repeating_bytes(
    sandbox: KubernetesSandbox, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    run = await started(sandbox, kube, kubelet)
    frames = Frames()
    lines = [frames.out(bytes([i]) * 100, "ro" if i % 2 else "re") for i in range(10)]
    log = b"".join(lines)
    kube.logs.setdefault(NAME, PodLog()).drop_at.extend([150, 700])
    kube.set_status(NAME, running())
    kube.append_log(NAME, log[:400])
    await asyncio.sleep(0.2)
    kube.append_log(NAME, log[400:] + frames.report(exit_code=0) + frames.end())
    kube.set_status(NAME, terminated(0, "Completed", phase="Succeeded"))
    kube.close_log(NAME)
    result = await result_of(run)
    assert result.status is SandboxStatus.SUCCEEDED, result.message
    assert result.stdout == b"".join(bytes([i]) * 100 for i in range(1, 10, 2))
    assert result.stderr == b"".join(bytes([i]) * 100 for i in range(0, 10, 2))
    assert run.follower.reconnects >= 2


async def test_a_log_stream_that_goes_silent_after_the_end_is_read_again(
    sandbox: KubernetesSandbox,
    kube: FakeKube,
    kubelet: FakeKubelet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("codeexec_kubernetes.run.REPORT_WAIT_S", 0.3)
    run = await started(sandbox, kube, kubelet)
    frames = Frames()
    first = frames.out(b"before\n")
    kube.logs.setdefault(NAME, PodLog()).stall_at.append(len(first))
    kube.set_status(NAME, running())
    kube.append_log(NAME, first)
    await asyncio.sleep(0.1)
    kube.append_log(NAME, frames.out(b"after\n") + frames.report(exit_code=0) + frames.end())
    kube.set_status(NAME, terminated(0, "Completed", phase="Succeeded"))
    kube.close_log(NAME)
    result = await result_of(run)
    assert result.status is SandboxStatus.SUCCEEDED, result.message
    assert result.stdout == b"before\nafter\n"


async def test_an_expired_watch_relists_and_misses_no_transition(
    sandbox: KubernetesSandbox, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    run = await started(sandbox, kube, kubelet)
    frames = Frames()
    assert sandbox.watcher is not None
    relists = sandbox.watcher.relists
    kube.set_status(NAME, running())
    kube.append_log(NAME, frames.out(b"done\n"))
    await asyncio.sleep(0.1)
    kube.compact()  # the open watch ends with 410 Gone
    kube.append_log(NAME, frames.report(exit_code=0) + frames.end())
    kube.set_status(NAME, terminated(0, "Completed", phase="Succeeded"))
    kube.close_log(NAME)
    result = await result_of(run)
    assert result.status is SandboxStatus.SUCCEEDED, result.message
    assert result.stdout == b"done\n"
    assert sandbox.watcher.relists > relists
