"""What the deploy base promises: restricted workloads with probes and resources, a worker that
alone has a token and only the rights a pod-per-run sandbox needs, executors shut off from the
network and held by a quota, configuration from a ConfigMap and a Secret the operator makes."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.deploy.executor import COMPONENT, EXECUTOR_LABELS, PART_OF, executor_policies
from tests.deploy.rendered import BASE, named, render
from tests.deploy.restricted import violations

Manifests = list[dict[str, Any]]
ROLES = ("coordinator", "saga", "worker", "projections", "relay", "dead-letters", "replay")
WORKLOAD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
RESTRICTED = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
}


def workloads(manifests: Manifests) -> list[dict[str, Any]]:
    return [o for o in manifests if o["kind"] in WORKLOAD_KINDS]


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def test_every_namespace_enforces_the_restricted_standard(manifests: Manifests) -> None:
    namespaces = named(manifests, "Namespace")
    assert set(namespaces) == {"/codeexec", "/codeexec-runs"}
    for ns in namespaces.values():
        assert RESTRICTED.items() <= ns["metadata"]["labels"].items(), ns["metadata"]["name"]
    in_namespaces = {o["metadata"].get("namespace") for o in manifests if o["kind"] != "Namespace"}
    assert in_namespaces == {"codeexec", "codeexec-runs"}


def test_every_workload_passes_the_restricted_checks(manifests: Manifests) -> None:
    found = {
        f"{o['kind']}/{o['metadata']['name']}": violations(
            o, token_allowed=o["metadata"]["name"] == "codeexec-worker"
        )
        for o in workloads(manifests)
    }
    assert len(found) == 8
    assert {k: v for k, v in found.items() if v} == {}


def test_the_api_and_each_role_run_their_command(manifests: Manifests) -> None:
    deployments = named(manifests, "Deployment")
    api = container_of(deployments["codeexec/codeexec-api"])
    assert api["command"] == ["codeexec", "api", "--host", "0.0.0.0", "--port", "8000"]
    for role in ROLES:
        container = container_of(deployments[f"codeexec/codeexec-{role}"])
        assert container["command"] == ["codeexec", "role", role, "--health-port", "9100"]
    assert len(deployments) == 1 + len(ROLES)


@pytest.mark.parametrize("name", ["api", *ROLES])
def test_each_deployment_probes_its_health_port(manifests: Manifests, name: str) -> None:
    deployment = named(manifests, "Deployment")[f"codeexec/codeexec-{name}"]
    container = container_of(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == ({"http": 8000} if name == "api" else {"health": 9100})
    live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
    assert live["path"] == "/health/live" and ready["path"] == "/health/ready"
    assert live["port"] in ports and ready["port"] in ports
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert labels[COMPONENT] == name and labels[PART_OF] == "codeexec"


def test_single_instance_roles_never_overlap_in_a_rollout(manifests: Manifests) -> None:
    for role in ("coordinator", "saga", "projections", "relay", "dead-letters", "replay"):
        deployment = named(manifests, "Deployment")[f"codeexec/codeexec-{role}"]
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_the_worker_outlives_its_shutdown_grace_and_is_named_by_its_pod(
    manifests: Manifests,
) -> None:
    worker = named(manifests, "Deployment")["codeexec/codeexec-worker"]
    config = next(iter(named(manifests, "ConfigMap").values()))["data"]
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(config["CODEEXEC_SHUTDOWN_GRACE_S"])
    env = {e["name"]: e for e in container_of(worker)["env"]}
    assert env["CODEEXEC_WORKER_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_only_the_worker_mounts_a_token(manifests: Manifests) -> None:
    tokens = {
        o["metadata"]["name"]
        for o in workloads(manifests)
        if o["spec"]["template"]["spec"].get("automountServiceAccountToken") is not False
    }
    assert tokens == {"codeexec-worker"}
    worker = named(manifests, "Deployment")["codeexec/codeexec-worker"]
    assert worker["spec"]["template"]["spec"]["serviceAccountName"] == "codeexec-worker"
    for account in named(manifests, "ServiceAccount").values():
        assert account["automountServiceAccountToken"] is False


def test_the_worker_role_is_least_privilege(manifests: Manifests) -> None:
    roles = named(manifests, "Role")
    assert not named(manifests, "ClusterRole") and not named(manifests, "ClusterRoleBinding")
    assert list(roles) == ["codeexec-runs/codeexec-executor-pods"]
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in roles["codeexec-runs/codeexec-executor-pods"]["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert granted == {
        ("", "pods"): {"create", "get", "list", "watch", "delete"},
        ("", "pods/log"): {"get"},
        ("", "configmaps"): {"create", "get", "list", "delete"},
        ("networking.k8s.io", "networkpolicies"): {"list"},
    }
    flat = [w for key, verbs in granted.items() for w in (*key, *verbs)]
    assert "*" not in flat and "secrets" not in flat
    binding = named(manifests, "RoleBinding")["codeexec-runs/codeexec-worker"]
    assert binding["roleRef"]["name"] == "codeexec-executor-pods"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "codeexec-worker", "namespace": "codeexec"}
    ]


def test_executors_get_no_network_at_all(manifests: Manifests) -> None:
    [policy] = executor_policies(manifests)
    assert policy["metadata"]["namespace"] == "codeexec-runs"
    assert policy["spec"]["podSelector"]["matchLabels"] == EXECUTOR_LABELS
    policies = named(manifests, "NetworkPolicy").values()
    everything = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert len(everything) == 1 and everything[0]["metadata"]["namespace"] == "codeexec-runs"
    for p in (policy, *everything):
        # Both directions listed and no rule: nothing in, nothing out (not even DNS).
        assert sorted(p["spec"]["policyTypes"]) == ["Egress", "Ingress"]
        assert "ingress" not in p["spec"] and "egress" not in p["spec"]


def test_the_executor_quota_counts_pods_with_a_deadline_and_refuses_the_rest(
    manifests: Manifests,
) -> None:
    quotas = named(manifests, "ResourceQuota")
    executors = quotas["codeexec-runs/executor-pods"]["spec"]
    assert executors["scopes"] == ["Terminating"]
    for bound in ("requests", "limits"):
        for resource in ("cpu", "memory", "ephemeral-storage"):
            assert f"{bound}.{resource}" in executors["hard"]
    assert int(executors["hard"]["pods"]) > 0
    assert quotas["codeexec-runs/pods-without-deadline"]["spec"] == {
        "scopes": ["NotTerminating"],
        "hard": {"pods": "0"},
    }


def test_configuration_from_a_config_map_and_an_operator_secret(manifests: Manifests) -> None:
    [config] = named(manifests, "ConfigMap").values()
    assert config["metadata"]["name"].startswith("codeexec-config-")  # hashed: changes roll
    assert {
        "CODEEXEC_BUS": "kafka",
        "CODEEXEC_STORE": "postgres",
        "CODEEXEC_SANDBOX": "kubernetes",
    }.items() <= config["data"].items()
    data_dir = PurePosixPath(config["data"]["CODEEXEC_DATA_DIR"])
    assert not named(manifests, "Secret"), "secret values are the operator's, never shipped"
    for deployment in named(manifests, "Deployment").values():
        container = container_of(deployment)
        assert container["envFrom"] == [
            {"configMapRef": {"name": config["metadata"]["name"]}},
            {"secretRef": {"name": "codeexec-connections"}},
        ]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts
        # Inside a mount, never the mount itself: codeexec chmods its data dir to 0700, which
        # a non-root process may do only to a directory it created (an emptyDir's is root's).
        assert str(data_dir.parent) in mounts, (data_dir, mounts)
        assert container["image"] == "codeexec:0.1.0"


def test_the_image_is_set_in_one_place(tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(BASE, base)
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    [image] = kustomization["images"]
    image.update(newName="registry.example/codeexec", newTag="9.9")
    (base / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    images = {
        c["image"]
        for o in render(base)
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"registry.example/codeexec:9.9"}
