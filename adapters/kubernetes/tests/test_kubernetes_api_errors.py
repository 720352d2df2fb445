"""API answers the sandbox must live with: 429 with Retry-After and 5xx are retried with
backoff, a create whose answer was lost is recognised as its own, refusals are named."""

from __future__ import annotations

import asyncio
import time

import pytest
from k8s_fake_api import FakeKube
from k8s_fixtures import (  # noqa: F401  (fixtures, by name)
    kube_fixture,
    kubelet_fixture,
    make_sandbox_fixture,
    sandbox_fixture,
)
from k8s_specs import SandboxFactory, python

from codeexec.domain.model import SandboxStatus
from codeexec.ports.sandbox import SandboxUnavailable
from codeexec_kubernetes import KubernetesSandbox

PODS = r"/namespaces/runs/pods$"
CONFIG_MAPS = r"/namespaces/runs/configmaps$"


async def test_429_waits_the_retry_after_it_was_given(
    sandbox: KubernetesSandbox, kube: FakeKube
) -> None:
    kube.fail("POST", PODS, 429, times=2, headers={"Retry-After": "0.3"})
    begun = time.monotonic()
    run = await sandbox.start("cx-429", python("print('ok')"))
    assert time.monotonic() - begun >= 0.6
    result = await asyncio.wait_for(run.result(), 10)
    assert result.status is SandboxStatus.SUCCEEDED and result.stdout == b"ok\n"
    assert sandbox.api is not None and sandbox.api.retried >= 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried_on_every_call(
    sandbox: KubernetesSandbox, kube: FakeKube, status: int
) -> None:
    kube.fail("POST", CONFIG_MAPS, status)
    kube.fail("GET", r"/pods/cx-5xx/log", status, times=2)
    kube.fail("DELETE", r"/pods/cx-5xx", status)
    run = await sandbox.start("cx-5xx", python("print('ok')"))
    result = await asyncio.wait_for(run.result(), 10)
    assert result.status is SandboxStatus.SUCCEEDED and result.stdout == b"ok\n"
    await asyncio.wait_for(run.finished(), 10)  # type: ignore[attr-defined]
    assert kube.pods() == [] and kube.config_maps() == []


async def test_a_create_that_succeeded_with_a_lost_answer_is_not_a_second_start(
    sandbox: KubernetesSandbox, kube: FakeKube
) -> None:
    kube.fail("POST", PODS, 503, after=True)  # created, then answered 503: retry meets 409
    run = await sandbox.start("cx-lost", python("print('once')"))
    result = await asyncio.wait_for(run.result(), 10)
    assert result.status is SandboxStatus.SUCCEEDED, result.message
    assert result.stdout == b"once\n"


async def test_a_full_quota_is_waited_for_within_the_start_timeout(
    sandbox: KubernetesSandbox, kube: FakeKube
) -> None:
    kube.fail(
        "POST", PODS, 403, times=3, message="exceeded quota: executor-pods, requested: pods=1"
    )
    run = await sandbox.start("cx-quota", python("print('in')"))
    result = await asyncio.wait_for(run.result(), 10)
    assert result.status is SandboxStatus.SUCCEEDED and result.stdout == b"in\n"


async def test_a_refused_pod_is_named_and_leaves_nothing_running(
    sandbox: KubernetesSandbox, kube: FakeKube
) -> None:
    kube.fail("POST", PODS, 422)
    with pytest.raises(SandboxUnavailable, match="refused the pod: 422"):
        await sandbox.start("cx-422", python("print(1)"))
    assert kube.pods() == [] and kube.config_maps() == []
    assert sandbox.runs == {}


async def test_retries_end_and_the_start_fails_instead_of_waiting_forever(
    make_sandbox: SandboxFactory, kube: FakeKube
) -> None:
    sandbox = await make_sandbox(retries=3)
    kube.fail("POST", CONFIG_MAPS, 503, times=10)
    with pytest.raises(SandboxUnavailable, match="503"):
        await asyncio.wait_for(sandbox.start("cx-down", python("print(1)")), 10)


async def test_an_unreachable_api_server_makes_the_sandbox_unavailable(
    make_sandbox: SandboxFactory, kube: FakeKube
) -> None:
    await kube.close()
    with pytest.raises(SandboxUnavailable, match="kubernetes"):
        await asyncio.wait_for(make_sandbox(retries=2), 10)
