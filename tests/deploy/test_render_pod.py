"""What the Kubernetes sandbox really creates (`codeexec kubernetes render-pod`, the adapter's
own objects) is held by the deploy base: every catalog language's pod passes the executor
checks against the rendered manifests, and the pod and its ConfigMaps (one, or a head and
its parts for a large run) match the strict Kubernetes schemas of every supported version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import validate

from codeexec.domain.model import RunSpec, SourceFile
from codeexec_kubernetes import DEFAULT_CATALOG, run_objects
from codeexec_kubernetes.isolation import isolation_gap
from codeexec_kubernetes.settings import VARIABLES, settings_from_env
from tests.deploy.executor import executor_violations
from tests.deploy.rendered import named
from tests.deploy.test_schemas import VERSIONS

CLI = [sys.executable, "-m", "codeexec_server.cli", "kubernetes", "render-pod", "--language"]
SETTINGS = {
    "CODEEXEC_K8S_RUNTIME_CLASS": "gvisor",
    "CODEEXEC_K8S_NODE_SELECTOR": json.dumps({"pool": "sandbox"}),
    "CODEEXEC_K8S_TOLERATIONS": json.dumps(
        [{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}]
    ),
}


def rendered(language: str, **env: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [*CLI, language], capture_output=True, text=True, timeout=60, env={**_env(), **env}
    )
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CODEEXEC_K8S_")}


@pytest.mark.parametrize("settings", [{}, SETTINGS], ids=["defaults", "runtime-class"])
@pytest.mark.parametrize("language", ["python", "bash"])
def test_the_sandboxs_pods_are_executors_the_manifests_hold(
    manifests: list[dict[str, Any]], language: str, settings: dict[str, str]
) -> None:
    config_map, pod = rendered(language, **settings)
    assert executor_violations(pod, manifests) == []
    assert config_map["metadata"]["namespace"] == pod["metadata"]["namespace"]


def test_the_deploy_configuration_is_what_the_sandbox_reads(
    manifests: list[dict[str, Any]],
) -> None:
    [config] = named(manifests, "ConfigMap").values()
    ours = {
        k: v
        for k, v in config["data"].items()
        if k.startswith(("CODEEXEC_K8S_", "CODEEXEC_KUBE", "KUBE"))
    }
    assert ours and set(ours) <= set(VARIABLES), (
        f"the sandbox does not read {set(ours) - set(VARIABLES)}"
    )
    _, pod = rendered("python", **ours)
    assert executor_violations(pod, manifests) == []


def test_every_worker_at_its_concurrency_fits_the_executor_quota(
    manifests: list[dict[str, Any]],
) -> None:
    """Runs beyond the quota would wait for a slot (the sandbox waits a 403 out), so the
    base sizes them to fit: workers x concurrency <= the quota's pods."""
    [config] = named(manifests, "ConfigMap").values()
    concurrency = int(config["data"]["CODEEXEC_K8S_CONCURRENCY"])
    worker = named(manifests, "Deployment")["codeexec/codeexec-worker"]
    quota = named(manifests, "ResourceQuota")["codeexec-runs/executor-pods"]
    assert worker["spec"]["replicas"] * concurrency <= int(quota["spec"]["hard"]["pods"])


def test_the_bases_policies_pass_the_sandboxs_own_isolation_check(
    manifests: list[dict[str, Any]],
) -> None:
    # The worker refuses to run code unless this holds (CODEEXEC_K8S_REQUIRE_NETWORK_POLICY).
    _, pod = rendered("python")
    namespace = pod["metadata"]["namespace"]
    policies = [
        o
        for o in manifests
        if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == namespace
    ]
    assert isolation_gap(policies, pod["metadata"]["labels"]) is None


def test_the_sandboxs_objects_match_the_strict_schemas() -> None:
    objects = rendered("python", **SETTINGS)
    for version in VERSIONS:
        for obj in objects:
            validate(obj, version, strict=True)


def test_a_large_runs_objects_match_the_strict_schemas_and_the_executor_checks(
    manifests: list[dict[str, Any]],
) -> None:
    """A run above one ConfigMap: its parts owned by the head, one projected volume."""
    big = SourceFile(name="main.py", content=b"#" * (3 * 2**20 + 2**19))
    spec = RunSpec(language="python", files=(big,), stdin=b"\xff" * 2**20)
    objects = run_objects(settings_from_env(SETTINGS), DEFAULT_CATALOG[0], "cx-big", spec)
    uid = "00000000-0000-0000-0000-000000000000"
    pod = objects.owned_pod(uid)
    created = [objects.config_map, *objects.owned_parts(uid), pod]
    assert len(created) > 3
    assert executor_violations(pod, manifests) == []
    for version in VERSIONS:
        for obj in created:
            validate(obj, version, strict=True)
