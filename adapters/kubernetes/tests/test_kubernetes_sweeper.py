"""Clean-up: after a worker crash its restarted process deletes the pods it left, and any
worker deletes pods and ConfigMaps that outlived their runs; live runs are never touched."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from k8s_fake_api import FakeKube
from k8s_fake_kubelet import FakeKubelet
from k8s_fixtures import (  # noqa: F401  (fixtures, by name)
    kube_fixture,
    kubelet_fixture,
    make_sandbox_fixture,
    sandbox_fixture,
)
from k8s_specs import SandboxFactory, python

from codeexec_kubernetes import KubernetesSandbox
from codeexec_kubernetes.objects import MANAGED
from codeexec_kubernetes.run import KubernetesRun

SLEEP = "import time\ntime.sleep(60)"


async def crash(sandbox: KubernetesSandbox) -> None:
    """What a killed worker process leaves: its pods, and nobody reading them."""
    tasks = [run._task for run in sandbox.runs.values() if run._task is not None]
    for component in (sandbox.watcher, sandbox.sweeper):
        task = getattr(component, "_task", None)
        if task is not None:
            tasks.append(task)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    sandbox.runs.clear()


async def test_a_restarted_worker_deletes_the_pods_its_crashed_process_left(
    make_sandbox: SandboxFactory, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    crashed = await make_sandbox()
    await crashed.start("cx-left-1", python(SLEEP, wall_time_s=120))
    await crashed.start("cx-left-2", python(SLEEP, wall_time_s=120))
    other = await make_sandbox(worker_id="worker-b")
    await other.start("cx-other", python(SLEEP, wall_time_s=120))
    await asyncio.wait_for(kubelet.running(3), 10)
    await crash(crashed)
    assert kube.pods() == ["cx-left-1", "cx-left-2", "cx-other"]

    restarted = await make_sandbox()  # the same worker id: the same pod, a new container
    assert restarted.sweeper is not None
    assert sorted(restarted.sweeper.deleted) == [
        ("configmap", "cx-left-1"),
        ("configmap", "cx-left-2"),
        ("pod", "cx-left-1"),
        ("pod", "cx-left-2"),
    ]
    assert kube.pods() == ["cx-other"]  # another worker's live run is left alone
    assert set(kubelet.processes) == {"cx-other"}  # the left runs' code really stopped
    assert ("pods", "cx-left-1", 0) in kube.deletes


async def test_any_worker_sweeps_pods_that_ended_or_outlived_their_deadline(
    make_sandbox: SandboxFactory, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    kubelet.manual = True
    other = await make_sandbox(worker_id="worker-b")
    for name in ("cx-ended", "cx-overdue", "cx-recent", "cx-running"):
        await other.start(name, python(SLEEP))
    await crash(other)
    kube.set_status("cx-ended", {"phase": "Succeeded"})
    kube.set_status("cx-recent", {"phase": "Failed"})
    kube.set_status("cx-running", {"phase": "Running"})
    old = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name in ("cx-ended", "cx-overdue"):
        kube.objects[("pods", name)]["metadata"]["creationTimestamp"] = old
    kube.objects[("configmaps", "cx-orphan")] = orphan(old)
    sandbox = await make_sandbox()
    assert sandbox.sweeper is not None
    # the grace is 60 s: old pods go, recent ones stay for their owner to read
    assert set(kube.pods()) == {"cx-recent", "cx-running"}
    assert "cx-orphan" not in kube.config_maps()
    assert ("pod", "cx-overdue") in sandbox.sweeper.deleted


def orphan(created: str) -> dict[str, Any]:
    labels = {**MANAGED, "codeexec.dev/worker": "worker-gone"}
    metadata = {"name": "cx-orphan", "uid": "u-1", "labels": labels}
    return {"kind": "ConfigMap", "metadata": {**metadata, "creationTimestamp": created}}


async def test_the_periodic_sweep_spares_runs_in_progress(
    make_sandbox: SandboxFactory, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    sandbox = await make_sandbox(sweep_interval_s=0.05)
    run = await sandbox.start("cx-busy", python(SLEEP, wall_time_s=120))
    assert isinstance(run, KubernetesRun)
    await asyncio.sleep(0.3)  # several sweeps
    assert kube.pods() == ["cx-busy"]
    await sandbox.stop("cx-busy")
    await run.finished()
    assert kube.pods() == []
