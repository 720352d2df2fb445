"""Submissions above one ConfigMap's 1 MiB, up to what the API accepts, run bytes-exact: the
payload is spread over ConfigMaps created before the pod, mounted through one projected
volume, joined by the real launcher, and every ConfigMap is gone after the run, after a
crash (the sweeper) and after a failed start."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from typing import Any

import pytest
from k8s_fake_api import FakeKube
from k8s_fake_kubelet import FakeKubelet
from k8s_fixtures import (  # noqa: F401  (fixtures, by name)
    kube_fixture,
    kubelet_fixture,
    make_sandbox_fixture,
    sandbox_fixture,
)
from k8s_specs import SandboxFactory, python
from test_kubernetes_sweeper import crash

from codeexec.domain.model import MAX_ARG_BYTES, RunSpec, SandboxStatus, SourceFile
from codeexec.ports.sandbox import SandboxUnavailable
from codeexec_kubernetes import KubernetesSandbox
from codeexec_kubernetes.objects import (
    CONFIGMAP_MAX_BYTES,
    MANAGED,
    SANDBOX_LABEL,
    WORKER_LABEL,
)

CONFIG_MAPS = r"/namespaces/runs/configmaps$"
PODS = r"/namespaces/runs/pods$"
MiB = 2**20


def big_source(size: int, tail: str = "print('end')\n") -> bytes:
    """A Python program of `size` bytes that prints its own digest and size, then `tail`:
    mostly a comment of multi-byte UTF-8, so a part boundary falls inside a character and
    only an exact join parses."""
    head = (
        b"import hashlib, sys\n"
        b"data = open(__file__, 'rb').read()\n"
        b"print(hashlib.sha256(data).hexdigest(), len(data))\n"
    )
    rng = random.Random(7)
    alphabet = "abc é€𝄞 ✓ żółw\t"
    filler = bytearray()
    while len(filler) < size:
        line = "#" + "".join(rng.choice(alphabet) for _ in range(90)) + "\n"
        filler += line.encode()
    end = tail.encode()
    body = bytes(filler[: size - len(head) - len(end) - 1])
    body = body.decode("utf-8", "ignore").encode()  # whole characters only
    source = head + body + b"\n" + end
    return source + b"#" * (size - len(source))


def created_order(kube: FakeKube) -> list[str]:
    return [path for method, path in kube.requests if method == "POST"]


def check_created_objects(kube: FakeKube, sandbox_id: str, count: int) -> None:
    """Every ConfigMap of the run: immutable, labelled as the pod is, within the limit with
    margin, owned by the head (which owns the pod), all created before the pod."""
    names = [n for n in kube.config_maps() if n.startswith(sandbox_id)]
    assert len(names) == count, names
    pod = kube.pod(sandbox_id)
    assert pod is not None
    head = kube.objects[("configmaps", sandbox_id)]
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": sandbox_id}
    assert pod["metadata"]["ownerReferences"] == [{**owner, "uid": head["metadata"]["uid"]}]
    sources = pod["spec"]["volumes"][0]["projected"]["sources"]
    assert [s["configMap"]["name"] for s in sources] == [sandbox_id] + [
        f"{sandbox_id}-{i}" for i in range(1, count)
    ]
    assert len(json.dumps(pod)) < 8192  # the payload is not in the pod spec
    for name in names:
        config_map = kube.objects[("configmaps", name)]
        meta = config_map["metadata"]
        assert config_map["immutable"] is True
        assert meta["labels"] == pod["metadata"]["labels"]
        assert meta["labels"][SANDBOX_LABEL] == sandbox_id
        assert len(json.dumps(config_map)) < CONFIGMAP_MAX_BYTES
        if name != sandbox_id:
            assert meta["ownerReferences"] == pod["metadata"]["ownerReferences"]
    posts = created_order(kube)
    assert posts[-1].endswith("/pods") and all(p.endswith("/configmaps") for p in posts[:-1])


async def test_a_3_5_mib_source_file_runs_bytes_exact(
    sandbox: KubernetesSandbox, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    source = big_source(3 * MiB + MiB // 2)
    run = await sandbox.start("cx-big-source", python(source))
    check_created_objects(kube, "cx-big-source", 5)
    result = await run.result()
    assert result.status is SandboxStatus.SUCCEEDED, result.message
    digest = hashlib.sha256(source).hexdigest()
    assert result.stdout == f"{digest} {len(source)}\nend\n".encode()
    await asyncio.wait_for(run.finished(), 10)  # type: ignore[attr-defined]
    assert kube.config_maps() == [] and kube.pods() == []


async def test_a_2_mib_stdin_runs_bytes_exact(sandbox: KubernetesSandbox, kube: FakeKube) -> None:
    stdin = random.Random(11).randbytes(2 * MiB)
    echo = "import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read())\n"
    run = await sandbox.start("cx-big-stdin", python(echo, stdin, output_bytes=3 * MiB))
    result = await run.result()
    assert result.status is SandboxStatus.SUCCEEDED, result.message
    assert result.stdout == stdin and not result.stdout_truncated
    await asyncio.wait_for(run.finished(), 10)  # type: ignore[attr-defined]
    assert kube.config_maps() == [] and kube.pods() == []
    assert len([p for p in created_order(kube) if p.endswith("/configmaps")]) == 3


async def test_many_files_and_arguments_of_a_megabyte_arrive_exactly(
    sandbox: KubernetesSandbox, kube: FakeKube
) -> None:
    """The plan itself (argv, file names) outgrows its ConfigMap and is cut too."""
    rng = random.Random(3)
    data = [rng.randbytes(rng.randrange(0, 200_000)) for _ in range(40)]
    args = tuple("ä" * ((MAX_ARG_BYTES - 2) // 2) for _ in range(7))  # ~900 KiB of argv
    main = (
        "import hashlib, sys\n"
        "h = hashlib.sha256()\n"
        "for i in range(40): h.update(open(f'd/{i}.bin', 'rb').read())\n"
        "print(h.hexdigest(), hashlib.sha256('|'.join(sys.argv[1:]).encode()).hexdigest())\n"
    )
    spec = RunSpec(
        language="python",
        files=(
            SourceFile(name="main.py", content=main.encode()),
            *(SourceFile(name=f"d/{i}.bin", content=d) for i, d in enumerate(data)),
        ),
        args=args,
    )
    result = await (await sandbox.start("cx-many", spec)).result()
    assert result.status is SandboxStatus.SUCCEEDED, result.message
    files = hashlib.sha256(b"".join(data)).hexdigest()
    argv = hashlib.sha256("|".join(args).encode()).hexdigest()
    assert result.stdout == f"{files} {argv}\n".encode()


async def test_a_crashed_workers_large_runs_are_swept_with_all_their_config_maps(
    make_sandbox: SandboxFactory, kube: FakeKube, kubelet: FakeKubelet
) -> None:
    crashed = await make_sandbox()
    sleeper = big_source(2 * MiB, "import time\ntime.sleep(60)\n")
    await crashed.start("cx-left", python(sleeper, wall_time_s=120))
    await asyncio.wait_for(kubelet.running(1), 10)
    await crash(crashed)
    assert kube.config_maps() == ["cx-left", "cx-left-1", "cx-left-2"]
    # Another worker, gone long ago, left a head and its parts but no pod (crashed
    # between the creates).
    for name in ("cx-orphan", "cx-orphan-1", "cx-orphan-2"):
        kube.objects[("configmaps", name)] = orphan(name, "cx-orphan")

    restarted = await make_sandbox()
    assert restarted.sweeper is not None
    deleted = restarted.sweeper.deleted
    assert deleted[0] == ("pod", "cx-left")
    assert set(deleted[1:3]) == {("configmap", "cx-left-1"), ("configmap", "cx-left-2")}
    assert deleted[3] == ("configmap", "cx-left")  # the head, owner of the rest, last
    assert deleted[-1] == ("configmap", "cx-orphan")
    assert kube.config_maps() == [] and kube.pods() == []
    assert kubelet.processes == {}


def orphan(name: str, sandbox_id: str) -> dict[str, Any]:
    labels = {**MANAGED, WORKER_LABEL: "worker-gone", SANDBOX_LABEL: sandbox_id}
    created = "2020-01-01T00:00:00Z"
    metadata = {"name": name, "uid": f"u-{name}", "labels": labels, "creationTimestamp": created}
    return {"kind": "ConfigMap", "metadata": metadata}


@pytest.mark.parametrize(
    ("path", "before", "status"),
    [(CONFIG_MAPS, 0, 422), (CONFIG_MAPS, 2, 422), (CONFIG_MAPS, 4, 503), (PODS, 0, 403)],
    ids=["head-refused", "third-refused", "fifth-unavailable", "pod-forbidden"],
)
async def test_a_failed_create_leaves_nothing_behind(
    sandbox: KubernetesSandbox, kube: FakeKube, path: str, before: int, status: int
) -> None:
    """A create of a run of five ConfigMaps and a pod fails, after `before` of its kind
    succeeded (a 503 on every retry)."""
    times = sandbox.settings.retries if status == 503 else 1
    kube.fail("POST", path, status, times=times, skip=before)
    spec = python(big_source(3 * MiB + MiB // 2))
    with pytest.raises(SandboxUnavailable, match=f"{status}"):
        await sandbox.start("cx-fails", spec)
    assert kube.config_maps() == [] and kube.pods() == []
    assert sandbox.runs == {} and not sandbox._holding
    # the id was never run: a later start of another id still gets a slot and runs
    result = await (await sandbox.start("cx-after", python("print('ok')"))).result()
    assert result.stdout == b"ok\n"
