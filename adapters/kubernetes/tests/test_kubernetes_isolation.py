"""No code runs unless the namespace's NetworkPolicies cut executor pods off both ways."""

from __future__ import annotations

from typing import Any

import pytest
from k8s_fake_api import DENY_ALL, FakeKube
from k8s_fixtures import (  # noqa: F401  (fixtures, by name)
    kube_fixture,
    kubelet_fixture,
    make_sandbox_fixture,
    sandbox_fixture,
)
from k8s_specs import SandboxFactory, python

from codeexec.domain.model import SandboxStatus
from codeexec.ports.sandbox import SandboxUnavailable
from codeexec_kubernetes.isolation import isolation_gap
from codeexec_kubernetes.objects import MANAGED

LABELS = {**MANAGED, "codeexec.dev/worker": "w"}


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec}


def test_the_deploy_bases_deny_all_isolates_executor_pods() -> None:
    assert isolation_gap([DENY_ALL], LABELS) is None
    everything = policy("all", podSelector={}, policyTypes=["Ingress", "Egress"])
    assert isolation_gap([everything], LABELS) is None


@pytest.mark.parametrize(
    ("policies", "gap"),
    [
        ([], "denies executor pods ingress or egress"),
        ([policy("in", podSelector={}, policyTypes=["Ingress"])], "denies executor pods egress"),
        ([policy("default", podSelector={})], "denies executor pods egress"),  # Ingress only
        (
            [policy("other", podSelector={"matchLabels": {"app": "web"}}, policyTypes=["Egress"])],
            "ingress or egress",
        ),
        (
            [
                DENY_ALL,
                policy("dns", podSelector={}, policyTypes=["Egress"], egress=[{"ports": [{}]}]),
            ],
            "NetworkPolicy dns allows executor pods some egress",
        ),
        (
            [
                policy(
                    "not-executors",
                    podSelector={
                        "matchExpressions": [
                            {
                                "key": "app.kubernetes.io/component",
                                "operator": "NotIn",
                                "values": ["executor"],
                            }
                        ]
                    },
                    policyTypes=["Ingress", "Egress"],
                )
            ],
            "ingress or egress",
        ),
    ],
)
def test_what_lets_traffic_through_is_named(policies: list[dict[str, Any]], gap: str) -> None:
    found = isolation_gap(policies, LABELS)
    assert found is not None and gap in found


async def test_without_a_deny_all_policy_the_sandbox_refuses_to_run_code(
    make_sandbox: SandboxFactory, kube: FakeKube
) -> None:
    del kube.objects[("networkpolicies", "executor-deny-all")]
    with pytest.raises(SandboxUnavailable, match="no NetworkPolicy denies executor pods"):
        await make_sandbox()
    allowed = await make_sandbox(require_network_policy=False)  # the operator's choice
    result = await (await allowed.start("cx-open", python("print('ok')"))).result()
    assert result.status is SandboxStatus.SUCCEEDED


async def test_a_worker_that_may_not_list_policies_is_told_so(
    make_sandbox: SandboxFactory, kube: FakeKube
) -> None:
    kube.fail("GET", "/networkpolicies", 403, message='networkpolicies is forbidden: "list"')
    with pytest.raises(SandboxUnavailable, match="cannot list NetworkPolicies"):
        await make_sandbox()
