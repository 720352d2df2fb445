"""The fake API server with its kubelet, and sandboxes talking to it through the real client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from fake_kube import FakeKube
from fake_kubelet import FakeKubelet
from kubernetes_asyncio import client

from codeexec_kubernetes import KubernetesSandbox, KubernetesSettings

SandboxFactory = Callable[..., Awaitable[KubernetesSandbox]]


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    fake = FakeKube()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def kubelet(kube: FakeKube) -> AsyncIterator[FakeKubelet]:
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


@pytest.fixture
async def make_sandbox(
    kube: FakeKube, kubelet: FakeKubelet
) -> AsyncIterator[SandboxFactory]:
    made: list[KubernetesSandbox] = []

    async def make(**changes: Any) -> KubernetesSandbox:
        configuration = client.Configuration(host=kube.url)
        api_client = client.ApiClient(configuration)
        sandbox = KubernetesSandbox(replace(TEST_SETTINGS, **changes), api_client)
        made.append(sandbox)
        await sandbox.prepare()
        return sandbox

    yield make
    for sandbox in made:
        await sandbox.close()


@pytest.fixture
async def sandbox(make_sandbox: SandboxFactory) -> KubernetesSandbox:
    return await make_sandbox()
