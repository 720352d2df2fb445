"""The Kubernetes sandbox passes the sandbox contract the local sandbox passes, on the fake
API server (its kubelet runs each pod's launcher as a local process)."""

from __future__ import annotations

import pytest
from k8s_fixtures import (  # noqa: F401  (fixtures, by name)
    kube_fixture,
    kubelet_fixture,
    make_sandbox_fixture,
    sandbox_fixture,
)

from codeexec.testing.sandbox import SandboxContract
from codeexec_kubernetes import KubernetesSandbox


@pytest.fixture
def contract_sandbox(sandbox: KubernetesSandbox) -> KubernetesSandbox:
    return sandbox


class TestKubernetesSandboxContract(SandboxContract):
    pass
