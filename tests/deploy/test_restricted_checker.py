"""The restricted checker and the executor checks catch each rule broken in an otherwise good
pod, find rules in every container list and every kind with a pod template, and let a
container's own setting override the pod's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy.executor import executor_violations
from tests.deploy.restricted import violations

Pod = dict[str, Any]


def good_pod() -> Pod:
    """An executor pod as the Kubernetes sandbox should render it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "run-1",
            "namespace": "codeexec-runs",
            "labels": {
                "app.kubernetes.io/part-of": "codeexec",
                "app.kubernetes.io/component": "executor",
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 15,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "run",
                    "image": "python:3.11-slim",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "resources": {
                        "requests": {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "64Mi"},
                        "limits": {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "64Mi"},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        },
    }


def spec(pod: Pod) -> Any:
    return pod["spec"]


def ctx(pod: Pod) -> Any:
    return pod["spec"]["containers"][0]["securityContext"]


def pod_ctx(pod: Pod) -> Any:
    return pod["spec"]["securityContext"]


def limits(pod: Pod) -> Any:
    return pod["spec"]["containers"][0]["resources"]["limits"]


RUN = "spec.containers[run]"
# Each: a change that breaks one rule, and the field the violation must name.
BREAKS: list[tuple[str, Callable[[Pod], None], str]] = [
    ("host network", lambda p: spec(p).update(hostNetwork=True), "spec.hostNetwork"),
    ("host pid", lambda p: spec(p).update(hostPID=True), "spec.hostPID"),
    ("host ipc", lambda p: spec(p).update(hostIPC=True), "spec.hostIPC"),
    (
        "token mounted",
        lambda p: spec(p).update(automountServiceAccountToken=True),
        "spec.automountServiceAccountToken",
    ),
    (
        "token left to the account",
        lambda p: spec(p).pop("automountServiceAccountToken"),
        "spec.automountServiceAccountToken",
    ),
    (
        "sysctls",
        lambda p: pod_ctx(p).update(
            sysctls=[{"name": "net.ipv4.ip_local_port_range", "value": "1 2"}]
        ),
        "spec.securityContext.sysctls",
    ),
    (
        "host path volume",
        lambda p: spec(p)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "spec.volumes[h].hostPath",
    ),
    (
        "unbounded emptyDir",
        lambda p: spec(p)["volumes"][0].update(emptyDir={}),
        "spec.volumes[tmp].emptyDir.sizeLimit",
    ),
    ("privileged", lambda p: ctx(p).update(privileged=True), f"{RUN}.securityContext.privileged"),
    (
        "escalation allowed",
        lambda p: ctx(p).update(allowPrivilegeEscalation=True),
        f"{RUN}.securityContext.allowPrivilegeEscalation",
    ),
    (
        "escalation unset",
        lambda p: ctx(p).pop("allowPrivilegeEscalation"),
        f"{RUN}.securityContext.allowPrivilegeEscalation",
    ),
    (
        "writable root",
        lambda p: ctx(p).update(readOnlyRootFilesystem=False),
        f"{RUN}.securityContext.readOnlyRootFilesystem",
    ),
    (
        "capabilities kept",
        lambda p: ctx(p).update(capabilities={"drop": ["NET_RAW"]}),
        f"{RUN}.securityContext.capabilities.drop",
    ),
    (
        "capability added",
        lambda p: ctx(p)["capabilities"].update(add=["NET_BIND_SERVICE"]),
        f"{RUN}.securityContext.capabilities.add",
    ),
    (
        "runAsNonRoot nowhere",
        lambda p: pod_ctx(p).pop("runAsNonRoot"),
        f"{RUN}.securityContext.runAsNonRoot",
    ),
    (
        "container overrides runAsNonRoot",
        lambda p: ctx(p).update(runAsNonRoot=False),
        f"{RUN}.securityContext.runAsNonRoot",
    ),
    (
        "root uid in the pod",
        lambda p: pod_ctx(p).update(runAsUser=0),
        "spec.securityContext.runAsUser",
    ),
    (
        "root uid in the container",
        lambda p: ctx(p).update(runAsUser=0),
        f"{RUN}.securityContext.runAsUser",
    ),
    (
        "no uid (the image's, maybe root)",
        lambda p: pod_ctx(p).pop("runAsUser"),
        f"{RUN}.securityContext.runAsUser",
    ),
    (
        "no seccomp",
        lambda p: pod_ctx(p).pop("seccompProfile"),
        f"{RUN}.securityContext.seccompProfile",
    ),
    (
        "seccomp unconfined",
        lambda p: ctx(p).update(seccompProfile={"type": "Unconfined"}),
        f"{RUN}.securityContext.seccompProfile.type",
    ),
    (
        "apparmor unconfined",
        lambda p: pod_ctx(p).update(appArmorProfile={"type": "Unconfined"}),
        "spec.securityContext.appArmorProfile.type",
    ),
    (
        "selinux type",
        lambda p: ctx(p).update(seLinuxOptions={"type": "spc_t"}),
        f"{RUN}.securityContext.seLinuxOptions.type",
    ),
    (
        "unmasked proc",
        lambda p: ctx(p).update(procMount="Unmasked"),
        f"{RUN}.securityContext.procMount",
    ),
    (
        "windows host process",
        lambda p: pod_ctx(p).update(windowsOptions={"hostProcess": True}),
        "spec.securityContext.windowsOptions.hostProcess",
    ),
    (
        "host port",
        lambda p: spec(p)["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
        f"{RUN}.ports[80].hostPort",
    ),
    ("no memory limit", lambda p: limits(p).pop("memory"), f"{RUN}.resources.limits.memory"),
    ("no cpu limit", lambda p: limits(p).pop("cpu"), f"{RUN}.resources.limits.cpu"),
    (
        "no disk limit",
        lambda p: limits(p).pop("ephemeral-storage"),
        f"{RUN}.resources.limits.ephemeral-storage",
    ),
    (
        "no requests",
        lambda p: spec(p)["containers"][0]["resources"].pop("requests"),
        f"{RUN}.resources.requests.cpu",
    ),
    ("no container", lambda p: spec(p).update(containers=[]), "spec.containers"),
]


def test_the_good_pod_passes() -> None:
    assert violations(good_pod()) == []


@pytest.mark.parametrize(
    ("change", "field"), [(b[1], b[2]) for b in BREAKS], ids=[b[0] for b in BREAKS]
)
def test_each_broken_rule_is_named_by_its_field(change: Callable[[Pod], None], field: str) -> None:
    pod = good_pod()
    change(pod)
    found = violations(pod)
    assert [v for v in found if v.split(":")[0] == field], found


def test_the_worker_alone_may_mount_its_token() -> None:
    pod = good_pod()
    spec(pod)["automountServiceAccountToken"] = True
    assert violations(pod, token_allowed=True) == []


def test_a_pod_level_setting_serves_every_container_unless_one_overrides_it() -> None:
    pod = good_pod()
    pod_ctx(pod).update(runAsNonRoot=False)
    ctx(pod).update(runAsNonRoot=True)
    assert violations(pod) == ["spec.securityContext.runAsNonRoot: must not be false"]


def test_init_and_ephemeral_containers_are_checked_too() -> None:
    pod = good_pod()
    spec(pod)["initContainers"] = [{"name": "fetch", "image": "busybox"}]
    spec(pod)["ephemeralContainers"] = [{"name": "debug", "image": "busybox"}]
    found = violations(pod)
    assert any(v.startswith("spec.initContainers[fetch].securityContext") for v in found)
    assert any(v.startswith("spec.initContainers[fetch].resources") for v in found)
    assert any(v.startswith("spec.ephemeralContainers[debug].securityContext") for v in found)
    # Ephemeral containers cannot state resources: none is asked of them.
    assert not any(v.startswith("spec.ephemeralContainers[debug].resources") for v in found)


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"])
def test_workloads_are_checked_through_their_pod_template(kind: str) -> None:
    pod = good_pod()
    ctx(pod)["privileged"] = True
    workload = {"kind": kind, "spec": {"template": {"metadata": {}, "spec": pod["spec"]}}}
    assert violations(workload) == [
        "spec.template.spec.containers[run].securityContext.privileged: must be unset or false"
    ]


def test_a_cron_job_is_checked_through_its_job_template() -> None:
    pod = good_pod()
    cron = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": pod}}}}
    assert violations(cron) == []
    ctx(pod)["privileged"] = True
    assert violations(cron) == [
        "spec.jobTemplate.spec.template.spec.containers[run].securityContext.privileged: "
        "must be unset or false"
    ]


def test_an_object_without_pods_is_refused_by_kind() -> None:
    with pytest.raises(ValueError, match="kind: 'Service'"):
        violations({"kind": "Service", "spec": {}})


def test_the_good_pod_is_an_executor_the_manifests_hold(manifests: list[dict[str, Any]]) -> None:
    assert executor_violations(good_pod(), manifests) == []


EXECUTOR_BREAKS: list[tuple[str, Callable[[Pod], None], str]] = [
    ("restarts", lambda p: spec(p).update(restartPolicy="OnFailure"), "spec.restartPolicy"),
    ("no deadline", lambda p: spec(p).pop("activeDeadlineSeconds"), "spec.activeDeadlineSeconds"),
    ("service links", lambda p: spec(p).pop("enableServiceLinks"), "spec.enableServiceLinks"),
    (
        "wrong namespace",
        lambda p: p["metadata"].update(namespace="codeexec"),
        "metadata.namespace",
    ),
    (
        "not labelled an executor",
        lambda p: p["metadata"]["labels"].update({"app.kubernetes.io/component": "run"}),
        "metadata.labels.app.kubernetes.io/component",
    ),
    (
        "runs as another account",
        lambda p: spec(p).update(serviceAccountName="codeexec-worker"),
        "spec.serviceAccountName",
    ),
    (
        "token mounted",
        lambda p: spec(p).update(automountServiceAccountToken=True),
        "spec.automountServiceAccountToken",
    ),
    ("not a pod", lambda p: p.update(kind="Job"), "kind"),
]


@pytest.mark.parametrize(
    ("change", "field"),
    [(b[1], b[2]) for b in EXECUTOR_BREAKS],
    ids=[b[0] for b in EXECUTOR_BREAKS],
)
def test_each_executor_rule_is_named_by_its_field(
    manifests: list[dict[str, Any]], change: Callable[[Pod], None], field: str
) -> None:
    pod = good_pod()
    change(pod)
    found = executor_violations(pod, manifests)
    assert [v for v in found if v.split(":")[0] == field], found


def test_without_the_network_policy_no_executor_passes(manifests: list[dict[str, Any]]) -> None:
    others = [o for o in manifests if o["kind"] != "NetworkPolicy"]
    assert executor_violations(good_pod(), others) == [
        "manifests: no NetworkPolicy selects executor pods"
    ]
