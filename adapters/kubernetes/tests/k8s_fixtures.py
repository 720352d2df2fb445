"""Fixtures: the fake API server with its kubelet, and sandboxes on it through the real client.

Test modules import them by name (a conftest.py would clash with other adapters' in one run)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from k8s_fake_api import FakeKube
from k8s_fake_kubelet import FakeKubelet
from k8s_specs import SandboxFactory
from kubernetes_asyncio import client

from codeexec_kubernetes import KubernetesSandbox, KubernetesSettings


@pytest.fixture(name="kube")
async def kube_fixture() -> AsyncIterator[FakeKube]:
    fake = FakeKube()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture(name="kubelet")
async def kubelet_fixture(kube: FakeKube) -> AsyncIterator[FakeKubelet]:
    fake = FakeKubelet(kube)
    yield fake
    await fake.close()


TEST_SETTINGS = KubernetesSettings(
    namespace="runs",
    worker_id="worker-a",
    start_timeout_s=10.0,
    unschedulable_s=0.3,
    sweep_interval_s=3600.0,
    sweep_grace_s=60.0,
    request_timeout_s=5.0,
)


@pytest.fixture(name="make_sandbox")
async def make_sandbox_fixture(
    kube: FakeKube, kubelet: FakeKubelet
) -> AsyncIterator[SandboxFactory]:
    made: list[KubernetesSandbox] = []

    async def make(**changes: Any) -> KubernetesSandbox:
        configuration = client.Configuration(host=kube.url)
        sandbox = KubernetesSandbox(replace(TEST_SETTINGS, **changes), configuration)
        made.append(sandbox)
        await sandbox.prepare()
        return sandbox

    yield make
    for sandbox in made:
        await sandbox.close()


@pytest.fixture(name="sandbox")
async def sandbox_fixture(make_sandbox: SandboxFactory) -> KubernetesSandbox:
    return await make_sandbox()
