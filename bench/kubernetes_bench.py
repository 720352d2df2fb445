"""Kubernetes sandbox: the adapter's own cost per run, and how many runs one worker drives.

The fake API server of the adapter's tests runs in a child process with a scripted kubelet
that plays each pod at once (Running, one output frame, its report, Succeeded) or holds it
for `--hold` seconds first, so what is measured is the adapter: building the objects, the API
round trips (ConfigMap, pod, watch events, log stream, two deletes) and its CPU, not a
container start. The `_large` figures are a run of 3.5 MiB of source: five ConfigMaps
created before the pod and deleted after it. A real cluster adds scheduling, image pull and
container start (seconds).

Prints `bench: NAME VALUE UNIT` lines."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from codeexec.domain.model import RunSpec, SandboxStatus, SourceFile
from codeexec_kubernetes import DEFAULT_CATALOG, KubernetesSandbox, KubernetesSettings, run_objects

TESTS = Path(__file__).resolve().parents[1] / "adapters" / "kubernetes" / "tests"
SPEC = RunSpec(language="python", files=(SourceFile(name="main.py", content=b"print('hi')\n"),))
LARGE = RunSpec(
    language="python",
    files=(SourceFile(name="main.py", content=b"# large\n" * (3 * 2**20 // 8 + 2**16)),),
)
"""3.5 MiB of source: five ConfigMaps (the head and four parts)."""


def serve(port_out: Any, hold_s: float) -> None:
    """The child: the fake API server with a kubelet that plays every pod by script."""
    sys.path.insert(0, str(TESTS))
    from k8s_fake_api import FakeKube
    from k8s_specs import Frames

    async def main() -> None:
        kube = FakeKube()
        await kube.start()

        def created(pod: dict[str, Any]) -> None:
            asyncio.get_running_loop().create_task(play(pod["metadata"]["name"]))

        async def play(name: str) -> None:
            await asyncio.sleep(0)
            frames = Frames()
            running = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
            kube.set_status(name, status("Running", running))
            if hold_s:
                await asyncio.sleep(hold_s)
            if kube.pod(name) is None:
                return
            kube.append_log(name, frames.out(b"hi\n") + frames.report() + frames.end())
            kube.close_log(name)
            done = {"terminated": {"exitCode": 0, "reason": "Completed"}}
            kube.set_status(name, status("Succeeded", done))

        kube.on_pod_created = created
        port_out.send(kube.url)
        await asyncio.Event().wait()

    asyncio.run(main())


def status(phase: str, state: dict[str, Any]) -> dict[str, Any]:
    return {"phase": phase, "containerStatuses": [{"name": "sandbox", "state": state}]}


def fake_server(hold_s: float) -> tuple[multiprocessing.Process, str]:
    receive, send = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(
        target=serve, args=(send, hold_s), daemon=True
    )
    process.start()
    return process, receive.recv()


async def sandbox_on(url: str, concurrency: int) -> KubernetesSandbox:
    settings = KubernetesSettings(namespace="runs", worker_id="bench", concurrency=concurrency)
    sandbox = KubernetesSandbox(settings, client.Configuration(host=url))
    await sandbox.prepare()
    return sandbox


async def one_run(sandbox: KubernetesSandbox, sandbox_id: str, spec: RunSpec = SPEC) -> None:
    run = await sandbox.start(sandbox_id, spec)
    result = await run.result()
    assert result.status is SandboxStatus.SUCCEEDED and result.stdout == b"hi\n", result
    await run.finished()  # type: ignore[attr-defined]


async def per_run(url: str, runs: int, spec: RunSpec = SPEC, name: str = "") -> None:
    sandbox = await sandbox_on(url, concurrency=1)
    for i in range(5):
        await one_run(sandbox, f"cx-warm{name}-{i}", spec)
    walls = []
    cpu_start = time.process_time()
    for i in range(runs):
        begun = time.perf_counter()
        await one_run(sandbox, f"cx-seq{name}-{i}", spec)
        walls.append(time.perf_counter() - begun)
    cpu = time.process_time() - cpu_start
    await sandbox.close()
    print(f"bench: kubernetes{name}_run_overhead_median {statistics.median(walls) * 1000:.2f} ms")
    print(f"bench: kubernetes{name}_worker_cpu_per_run {cpu / runs * 1000:.2f} ms")


async def concurrent(url: str, count: int) -> tuple[float, float]:
    """All `count` runs at once: the wall time until the last pod is deleted, and this
    process's CPU per run."""
    sandbox = await sandbox_on(url, concurrency=count)
    begun, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_run(sandbox, f"cx-par-{count}-{i}") for i in range(count)))
    wall, cpu = time.perf_counter() - begun, time.process_time() - cpu
    await sandbox.close()
    return wall, cpu / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--large-runs", type=int, default=20, help="runs of 3.5 MiB source")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds each held pod runs")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[50, 200, 500])
    args = parser.parse_args()

    settings = KubernetesSettings()
    for name, spec, builds in (("", SPEC, 2000), ("_large", LARGE, 20)):
        begun = time.perf_counter()
        for i in range(builds):
            run_objects(settings, DEFAULT_CATALOG[0], f"cx-{i}", spec)
        build_us = (time.perf_counter() - begun) / builds * 1e6
        print(f"bench: kubernetes{name}_pod_build {build_us:.1f} us")

    process, url = fake_server(0.0)
    try:
        asyncio.run(per_run(url, args.runs))
        if args.large_runs:
            asyncio.run(per_run(url, args.large_runs, LARGE, "_large"))
    finally:
        process.kill()

    process, url = fake_server(args.hold)
    try:
        for count in args.concurrency:
            wall, cpu = asyncio.run(concurrent(url, count))
            name = f"kubernetes_concurrent_{count}_runs_of_{args.hold:g}s"
            print(f"bench: {name}_wall {wall:.2f} s")
            print(f"bench: {name}_worker_cpu_per_run {cpu * 1000:.2f} ms")
    finally:
        process.kill()


if __name__ == "__main__":
    main()
