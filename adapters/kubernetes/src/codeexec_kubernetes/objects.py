"""The Kubernetes objects of one run, built by a pure function: ConfigMaps and a hardened pod.

Delivery: the run's files, stdin, plan and the launcher go in immutable ConfigMaps, as many as
the payload needs (`payload`: each well within the 1 MiB a ConfigMap holds, a large file cut
in parts the launcher joins), mounted read-only through one projected volume so the pod spec
stays small. The first ConfigMap (the head, named after the run) owns the others and the pod:
deleting it leaves nothing behind for long. Nothing passes through a shell (the plan holds
argv lists), and nothing rides in annotations or env (256 KiB and ~1 MiB limits, visible in
`kubectl describe`). Not a Secret: the worker's Role is kept free of secrets access."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

from codeexec.domain.model import RunSpec, SourceFile
from codeexec_kubernetes.catalog import LanguageImage
from codeexec_kubernetes.payload import (
    CONFIGMAP_BUDGET,
    CONFIGMAP_MAX_BYTES,
    MAX_CONFIG_MAPS,
    Entry,
    Packer,
    PayloadTooLarge,
)
from codeexec_kubernetes.settings import KubernetesSettings

__all__ = ["CONFIGMAP_MAX_BYTES", "PayloadTooLarge", "RunObjects", "run_objects"]

PAYLOAD_DIR, WORK_DIR = "/codeexec/payload", "/work"
CONTAINER = "sandbox"
LAUNCHER_MEMORY = 32 * 2**20
"""The launcher's own share of the container's memory limit, beside the program's."""
DEADLINE_MARGIN_S = 5

MANAGED = {
    "app.kubernetes.io/part-of": "codeexec",
    "app.kubernetes.io/component": "executor",
    "app.kubernetes.io/managed-by": "codeexec",
}
"""Labels of every object the adapter creates: the deploy base's deny-all NetworkPolicy
selects the first two, the sweeper all three."""
WORKER_LABEL, SANDBOX_LABEL, LANGUAGE_LABEL = (
    "codeexec.dev/worker",
    "codeexec.dev/sandbox",
    "codeexec.dev/language",
)
TOKEN_ANNOTATION = "codeexec.dev/start-token"


@dataclass(frozen=True)
class RunObjects:
    config_maps: tuple[dict[str, Any], ...]
    """The head (named after the run: the launcher, and all of a small run), then its parts."""
    pod: dict[str, Any]

    @property
    def config_map(self) -> dict[str, Any]:
        return self.config_maps[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Every ConfigMap's name, the head's first."""
        return tuple(c["metadata"]["name"] for c in self.config_maps)

    def _owned(self, obj: dict[str, Any], head_uid: str) -> dict[str, Any]:
        owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": self.names[0], "uid": head_uid}
        return {**obj, "metadata": {**obj["metadata"], "ownerReferences": [owner]}}

    def owned_parts(self, head_uid: str) -> list[dict[str, Any]]:
        """The ConfigMaps after the head, owned by the created head (collected with it)."""
        return [self._owned(c, head_uid) for c in self.config_maps[1:]]

    def owned_pod(self, head_uid: str) -> dict[str, Any]:
        """The pod owned by the created head ConfigMap (garbage-collected with it)."""
        return self._owned(self.pod, head_uid)


@functools.cache
def launcher_source() -> str:
    return resources.files("codeexec_kubernetes").joinpath("launcher.py").read_text("utf-8")


@functools.cache
def _launcher() -> Entry:
    """One entry for every run, so its JSON size is measured once."""
    return Entry("launcher.py", launcher_source().encode("ascii"), text=True)


def run_objects(
    settings: KubernetesSettings,
    image: LanguageImage,
    sandbox_id: str,
    spec: RunSpec,
    token: str = "sample",
) -> RunObjects:
    """The ConfigMaps and pod for one run (pure: no API call). Raises PayloadTooLarge."""
    files = [f.name for f in spec.files]
    stages = []
    compile_argv = image.compile_argv(files, spec.compile_args)
    if compile_argv is not None:
        stages.append({"name": "compile", "argv": compile_argv, "limits": _limits(spec, True)})
    run_argv = image.run_argv(files, spec.args)
    stages.append({"name": "run", "argv": run_argv, "limits": _limits(spec, False)})
    packer = Packer([_launcher()])
    try:
        # [key, name, size, parts]: the launcher joins KEY.0.. when parts > 1, and checks
        # the size. The plan goes last: it names the parts, and the launcher finds it by key.
        planned = [
            [f"f{i}", f.name, len(f.content), packer.add(Entry(f"f{i}", f.content))]
            for i, f in enumerate(spec.files)
        ]
        stdin = [len(spec.stdin), packer.add(Entry("stdin", spec.stdin))] if spec.stdin else None
        plan = {"files": planned, "stdin": stdin, "stages": stages}
        plan_text = json.dumps(plan, separators=(",", ":")).encode("ascii")
        packer.add(Entry("plan.json", plan_text, text=True))
    except PayloadTooLarge:
        raise PayloadTooLarge(
            f"the submission's files and stdin ({spec.payload_bytes} bytes) with its plan "
            f"need more than the {MAX_CONFIG_MAPS} ConfigMaps of {CONFIGMAP_BUDGET} bytes "
            "(base64 counted) a run may use to carry them into the pod"
        ) from None
    labels = {
        **MANAGED,
        "app.kubernetes.io/name": "codeexec-executor",
        WORKER_LABEL: settings.worker_id,
        SANDBOX_LABEL: sandbox_id,
        LANGUAGE_LABEL: image.name,
    }
    metadata = {
        "name": sandbox_id,
        "namespace": settings.namespace,
        "labels": labels,
        "annotations": {TOKEN_ANNOTATION: token},
    }
    config_maps = []
    for i, slot in enumerate(packer.slots):
        name = sandbox_id if i == 0 else f"{sandbox_id}-{i}"
        config_map: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {**metadata, "name": name},
            "immutable": True,
        }
        if slot.data:
            config_map["data"] = slot.data
        if slot.binary:
            config_map["binaryData"] = slot.binary
        config_maps.append(config_map)
    names = [c["metadata"]["name"] for c in config_maps]
    pod = _pod(settings, image, spec, metadata, names, compile_argv is not None)
    return RunObjects(tuple(config_maps), pod)


def _limits(spec: RunSpec, compile: bool) -> dict[str, Any]:
    limits = spec.compile_limits if compile else spec.limits
    return limits.model_dump(mode="json")


def active_deadline_s(settings: KubernetesSettings, spec: RunSpec, compiled: bool) -> int:
    """Start-up allowance plus every stage's wall limit: the kubelet's backstop."""
    wall = spec.limits.wall_time_s + (spec.compile_limits.wall_time_s if compiled else 0.0)
    return math.ceil(settings.start_timeout_s + wall) + DEADLINE_MARGIN_S


def _pod(
    settings: KubernetesSettings,
    image: LanguageImage,
    spec: RunSpec,
    metadata: dict[str, Any],
    config_maps: list[str],
    compiled: bool,
) -> dict[str, Any]:
    memory = max(spec.limits.memory_bytes, spec.compile_limits.memory_bytes if compiled else 0)
    scratch = settings.scratch_bytes
    resources_ = {
        "cpu": settings.cpu,
        "memory": str(memory + LAUNCHER_MEMORY),
        # both emptyDirs plus the container's log and writable layer
        "ephemeral-storage": str(2 * scratch + 32 * 2**20),
    }
    uid = settings.uid
    container = {
        "name": CONTAINER,
        "image": image.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [image.launcher, f"{PAYLOAD_DIR}/launcher.py", PAYLOAD_DIR, WORK_DIR],
        "workingDir": WORK_DIR,
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "TMPDIR", "value": "/tmp"},
            {"name": "LANG", "value": "C.UTF-8"},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        ],
        "resources": {"limits": resources_, "requests": dict(resources_)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "payload", "mountPath": PAYLOAD_DIR, "readOnly": True},
            {"name": "work", "mountPath": WORK_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": active_deadline_s(settings, spec, compiled),
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {
                "name": "payload",
                "projected": {
                    "sources": [{"configMap": {"name": name}} for name in config_maps],
                    "defaultMode": 0o444,
                },
            },
            {"name": "work", "emptyDir": {"sizeLimit": str(scratch)}},
            {"name": "tmp", "emptyDir": {"sizeLimit": str(scratch)}},
        ],
    }
    if settings.runtime_class:
        pod_spec["runtimeClassName"] = settings.runtime_class
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in settings.tolerations]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def sample_spec(image: LanguageImage) -> RunSpec:
    """A sample run, for `codeexec kubernetes render-pod` and the deploy checks."""
    return RunSpec(
        language=image.name,
        files=(SourceFile(name=f"main{image.extension}", content=b"sample source\n"),),
        stdin=b"sample stdin\n",
    )
