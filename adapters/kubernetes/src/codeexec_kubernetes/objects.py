"""The Kubernetes objects of one run, built by a pure function: a ConfigMap and a hardened pod.

Delivery: the run's files, stdin, plan and the launcher go in one immutable ConfigMap mounted
read-only; the pod is owned by it, so deleting either never leaves the other behind for long.
Nothing passes through a shell (the plan holds argv lists), and nothing rides in annotations
or env (256 KiB and ~1 MiB limits, visible in `kubectl describe`). A ConfigMap holds at most
1 MiB, so a larger submission is refused with a message naming its size. Not a Secret: the
worker's Role is kept free of secrets access."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

from codeexec.domain.model import RunSpec, SourceFile
from codeexec.ports.sandbox import SandboxError
from codeexec_kubernetes.catalog import LanguageImage
from codeexec_kubernetes.settings import KubernetesSettings

CONFIGMAP_MAX_BYTES = 1024 * 1024
"""The API server's limit on a ConfigMap's data plus binaryData."""
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


class PayloadTooLarge(SandboxError):
    """The submission does not fit the ConfigMap that carries it into the pod."""


@dataclass(frozen=True)
class RunObjects:
    config_map: dict[str, Any]
    pod: dict[str, Any]

    def owned_pod(self, config_map_uid: str) -> dict[str, Any]:
        """The pod owned by its created ConfigMap (garbage-collected with it)."""
        owner = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": self.config_map["metadata"]["name"],
            "uid": config_map_uid,
        }
        metadata = {**self.pod["metadata"], "ownerReferences": [owner]}
        return {**self.pod, "metadata": metadata}


def launcher_source() -> str:
    return resources.files("codeexec_kubernetes").joinpath("launcher.py").read_text("utf-8")


def run_objects(
    settings: KubernetesSettings,
    image: LanguageImage,
    sandbox_id: str,
    spec: RunSpec,
    token: str = "sample",
) -> RunObjects:
    """The ConfigMap and pod for one run (pure: no API call). Raises PayloadTooLarge."""
    files = [f.name for f in spec.files]
    stages = []
    compile_argv = image.compile_argv(files, spec.compile_args)
    if compile_argv is not None:
        stages.append({"name": "compile", "argv": compile_argv, "limits": _limits(spec, True)})
    run_argv = image.run_argv(files, spec.args)
    stages.append({"name": "run", "argv": run_argv, "limits": _limits(spec, False)})
    plan = {
        "files": [[f"f{i}", name] for i, name in enumerate(files)],
        "stdin": bool(spec.stdin),
        "stages": stages,
    }
    plan_text, launcher = json.dumps(plan, separators=(",", ":")), launcher_source()
    binary = {f"f{i}": f.content for i, f in enumerate(spec.files)}
    if spec.stdin:
        binary["stdin"] = spec.stdin
    size = len(plan_text) + len(launcher) + sum(len(k) + len(v) for k, v in binary.items())
    if size > CONFIGMAP_MAX_BYTES - 1024:
        raise PayloadTooLarge(
            f"the submission's files and stdin ({spec.payload_bytes} bytes) do not fit the "
            f"{CONFIGMAP_MAX_BYTES} bytes a ConfigMap carries into the pod"
        )
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
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "immutable": True,
        "data": {"plan.json": plan_text, "launcher.py": launcher},
        "binaryData": {k: base64.b64encode(v).decode("ascii") for k, v in binary.items()},
    }
    return RunObjects(config_map, _pod(settings, image, spec, metadata, compile_argv is not None))


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
                "configMap": {"name": metadata["name"], "defaultMode": 0o444},
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
