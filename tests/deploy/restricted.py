"""The restricted Pod Security Standard, and codeexec's stricter rules, as a check of one object.

`violations(obj)` takes a Pod or any workload with a pod template (Deployment, StatefulSet,
DaemonSet, ReplicaSet, Job, CronJob) as a dict, as `kubectl kustomize` or
`codeexec kubernetes render-pod` print it, and returns what breaks a rule, each as
`field.path: what is wrong`. Empty: it passes. The API server's own admission enforces the
standard on a cluster; this check runs where no cluster does, and adds what the standard
leaves out: a read-only root filesystem, no token unless needed, no sysctls, no hostPort,
size-limited emptyDirs and stated resource requests and limits."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Obj = Mapping[str, Any]

POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
# The volume types the restricted standard allows (everything else reaches the node).
ALLOWED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
ALLOWED_SECCOMP = frozenset({"RuntimeDefault", "Localhost"})
ALLOWED_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
RESOURCES = ("cpu", "memory", "ephemeral-storage")
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def pod_spec_of(obj: Obj) -> tuple[str, Obj]:
    """The pod spec inside `obj` and its path; ValueError names a kind that has none."""
    kind = obj.get("kind")
    if kind == "Pod":
        return "spec", obj.get("spec") or {}
    if kind in POD_TEMPLATE_KINDS:
        return "spec.template.spec", ((obj.get("spec") or {}).get("template") or {}).get(
            "spec"
        ) or {}
    if kind == "CronJob":
        job = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        return "spec.jobTemplate.spec.template.spec", (job.get("template") or {}).get("spec") or {}
    raise ValueError(f"kind: {kind!r} has no pod spec to check")


def violations(obj: Obj, *, token_allowed: bool = False) -> list[str]:
    """Every rule `obj` breaks. `token_allowed`: it may mount its service account token
    (the worker, which talks to the API server); everything else must not."""
    path, spec = pod_spec_of(obj)
    return list(_pod(path, spec, token_allowed=token_allowed))


def _pod(path: str, spec: Obj, *, token_allowed: bool) -> Iterator[str]:
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host):
            yield f"{path}.{host}: must be unset or false"
    if spec.get("automountServiceAccountToken") is not False and not token_allowed:
        shown = _shown(spec, "automountServiceAccountToken")
        yield f"{path}.automountServiceAccountToken: must be false (is {shown})"
    pod_context = spec.get("securityContext") or {}
    ctx = f"{path}.securityContext"
    if pod_context.get("sysctls"):
        yield f"{ctx}.sysctls: must be empty"
    yield from _common_context(ctx, pod_context)
    for i, volume in enumerate(spec.get("volumes") or []):
        yield from _volume(f"{path}.volumes[{volume.get('name', i)}]", volume)
    if not spec.get("containers"):
        yield f"{path}.containers: a pod needs at least one container"
    for key in CONTAINER_LISTS:
        for i, container in enumerate(spec.get(key) or []):
            where = f"{path}.{key}[{container.get('name', i)}]"
            yield from _container(where, container, pod_context)
            if key != "ephemeralContainers":
                yield from _resources(f"{where}.resources", container.get("resources") or {})


def _volume(path: str, volume: Obj) -> Iterator[str]:
    kinds = [k for k in volume if k != "name"]
    for kind in kinds:
        if kind not in ALLOWED_VOLUMES:
            allowed = ", ".join(sorted(ALLOWED_VOLUMES))
            yield f"{path}.{kind}: volume type not allowed (allowed: {allowed})"
    if "emptyDir" in volume and not (volume["emptyDir"] or {}).get("sizeLimit"):
        yield f"{path}.emptyDir.sizeLimit: must be set (an unbounded emptyDir fills the node)"


def _common_context(path: str, context: Obj) -> Iterator[str]:
    """Rules that apply alike to a pod's and a container's securityContext."""
    if (context.get("windowsOptions") or {}).get("hostProcess"):
        yield f"{path}.windowsOptions.hostProcess: must be unset or false"
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in ALLOWED_SELINUX_TYPES:
        yield f"{path}.seLinuxOptions.type: {selinux['type']!r} not allowed"
    for key in ("user", "role"):
        if selinux.get(key):
            yield f"{path}.seLinuxOptions.{key}: must be unset"
    if (context.get("appArmorProfile") or {}).get("type") == "Unconfined":
        yield f"{path}.appArmorProfile.type: must not be Unconfined"
    if context.get("runAsUser") == 0:
        yield f"{path}.runAsUser: must not be 0 (root)"
    if context.get("runAsNonRoot") is False:
        yield f"{path}.runAsNonRoot: must not be false"
    seccomp = (context.get("seccompProfile") or {}).get("type")
    if seccomp is not None and seccomp not in ALLOWED_SECCOMP:
        yield f"{path}.seccompProfile.type: must be RuntimeDefault or Localhost (is {seccomp})"


def _container(path: str, container: Obj, pod_context: Obj) -> Iterator[str]:
    context = container.get("securityContext") or {}
    ctx = f"{path}.securityContext"
    yield from _common_context(ctx, context)
    if context.get("privileged"):
        yield f"{ctx}.privileged: must be unset or false"
    if context.get("allowPrivilegeEscalation") is not False:
        shown = _shown(context, "allowPrivilegeEscalation")
        yield f"{ctx}.allowPrivilegeEscalation: must be false (is {shown})"
    if context.get("readOnlyRootFilesystem") is not True:
        shown = _shown(context, "readOnlyRootFilesystem")
        yield f"{ctx}.readOnlyRootFilesystem: must be true (is {shown})"
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        yield f"{ctx}.capabilities.drop: must include ALL"
    if capabilities.get("add"):
        yield f"{ctx}.capabilities.add: must be empty (is {capabilities['add']})"
    if context.get("procMount", "Default") != "Default":
        yield f"{ctx}.procMount: must be Default"
    # A container's own setting wins over the pod's; one of them must say it.
    if _effective("runAsNonRoot", context, pod_context) is not True:
        yield f"{ctx}.runAsNonRoot: must be true here or in the pod's securityContext"
    if not _effective("runAsUser", context, pod_context):
        yield f"{ctx}.runAsUser: must be a non-zero uid here or in the pod's securityContext"
    if _effective("seccompProfile", context, pod_context) is None:
        yield f"{ctx}.seccompProfile: must be RuntimeDefault here or in the pod's securityContext"
    for port in container.get("ports") or []:
        if port.get("hostPort"):
            yield f"{path}.ports[{port.get('containerPort')}].hostPort: must be unset"


def _resources(path: str, resources: Obj) -> Iterator[str]:
    for bound in ("requests", "limits"):
        stated = resources.get(bound) or {}
        for resource in RESOURCES:
            if resource not in stated:
                yield f"{path}.{bound}.{resource}: must be set"


def _effective(key: str, context: Obj, pod_context: Obj) -> Any:
    return context[key] if key in context else pod_context.get(key)


def _shown(mapping: Obj, key: str) -> str:
    return repr(mapping[key]) if key in mapping else "unset"
