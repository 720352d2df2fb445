"""KubernetesSettings: where and how executor pods run, read from CODEEXEC_K8S_* variables."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codeexec_kubernetes.catalog import (
    DEFAULT_CATALOG,
    CatalogError,
    LanguageImage,
    parse_catalog,
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


class KubernetesSettingsError(ValueError):
    """A setting has a value the sandbox cannot use; the message names the variable."""


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str = "codeexec-runs"
    """The deploy base's executor namespace (deny-all policy, quota, the worker's Role)."""
    catalog: tuple[LanguageImage, ...] = DEFAULT_CATALOG
    runtime_class: str | None = None
    """For example `gvisor`: a stronger kernel boundary than the shared host kernel."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    concurrency: int = 32
    """Pods this worker process drives at once; further starts wait for a slot."""
    worker_id: str = field(default_factory=socket.gethostname)
    """Labels this process's pods: unique per worker process, and the same after a restart,
    so the start sweep finds what the crashed process left. From CODEEXEC_K8S_WORKER_ID,
    else the worker's CODEEXEC_WORKER_ID, else the host name (the pod name in a Deployment,
    kept when its container restarts)."""
    kubeconfig: str | None = None
    """A kubeconfig file; none: in-cluster service account, else ~/.kube/config."""
    context: str | None = None
    uid: int = 65532
    cpu: str = "1"
    """The pod's cpu limit (and request), in Kubernetes quantity syntax."""
    scratch_bytes: int = 64 * 2**20
    """Size limit of each of the pod's emptyDirs (/tmp and the work dir)."""
    start_timeout_s: float = 120.0
    """Scheduling, image pull and container start, before the wall limits start counting."""
    unschedulable_s: float = 30.0
    """How long a pod may stay unschedulable (an autoscaler may add a node) before the run
    fails with internal_error."""
    sweep_interval_s: float = 60.0
    sweep_grace_s: float = 300.0
    """A finished or overdue pod of another worker is left this long for its owner to read."""
    require_network_policy: bool = True
    """Refuse to run code unless the namespace's NetworkPolicies cut executor pods off."""
    request_timeout_s: float = 30.0
    retries: int = 6
    """Attempts of one API call on 429/5xx/connection errors (backoff, Retry-After)."""

    def __post_init__(self) -> None:
        if not _DNS_LABEL.match(self.namespace):
            raise KubernetesSettingsError(
                f"CODEEXEC_K8S_NAMESPACE must be a DNS label, not {self.namespace!r}"
            )
        if not _LABEL_VALUE.match(self.worker_id):
            raise KubernetesSettingsError(
                f"CODEEXEC_K8S_WORKER_ID must be a label value (<= 63 of [A-Za-z0-9-_.]), "
                f"not {self.worker_id!r}"
            )
        if self.runtime_class is not None and not _DNS_LABEL.match(self.runtime_class):
            raise KubernetesSettingsError(
                f"CODEEXEC_K8S_RUNTIME_CLASS must be a DNS label, not {self.runtime_class!r}"
            )
        for name, low in (("concurrency", 1), ("uid", 1), ("retries", 1)):
            if getattr(self, name) < low:
                raise KubernetesSettingsError(
                    f"CODEEXEC_K8S_{name.upper()} must be at least {low}, not {getattr(self, name)}"
                )
        if not re.match(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$", self.cpu):
            raise KubernetesSettingsError(
                f"CODEEXEC_K8S_CPU must be a cpu quantity (1, 0.5, 500m), not {self.cpu!r}"
            )
        if self.scratch_bytes < 2**20:
            raise KubernetesSettingsError("CODEEXEC_K8S_SCRATCH_BYTES must be at least 1 MiB")


_NUMBERS = {
    "CODEEXEC_K8S_CONCURRENCY": ("concurrency", int),
    "CODEEXEC_K8S_UID": ("uid", int),
    "CODEEXEC_K8S_SCRATCH_BYTES": ("scratch_bytes", int),
    "CODEEXEC_K8S_START_TIMEOUT_S": ("start_timeout_s", float),
    "CODEEXEC_K8S_UNSCHEDULABLE_S": ("unschedulable_s", float),
    "CODEEXEC_K8S_SWEEP_INTERVAL_S": ("sweep_interval_s", float),
    "CODEEXEC_K8S_SWEEP_GRACE_S": ("sweep_grace_s", float),
    "CODEEXEC_K8S_REQUEST_TIMEOUT_S": ("request_timeout_s", float),
    "CODEEXEC_K8S_RETRIES": ("retries", int),
}


_NAMES = {
    "CODEEXEC_K8S_NAMESPACE": "namespace",
    "CODEEXEC_K8S_RUNTIME_CLASS": "runtime_class",
    "CODEEXEC_K8S_WORKER_ID": "worker_id",
    "CODEEXEC_K8S_CONTEXT": "context",
    "CODEEXEC_K8S_CPU": "cpu",
    "KUBECONFIG": "kubeconfig",
}
VARIABLES = (
    *_NAMES,
    *_NUMBERS,
    "CODEEXEC_K8S_IMAGES",
    "CODEEXEC_K8S_NODE_SELECTOR",
    "CODEEXEC_K8S_TOLERATIONS",
    "CODEEXEC_K8S_REQUIRE_NETWORK_POLICY",
)
"""Every variable the sandbox reads (and CODEEXEC_WORKER_ID, the worker's own)."""


def settings_from_env(env: Mapping[str, str]) -> KubernetesSettings:
    """Every CODEEXEC_K8S_* variable; a bad value raises KubernetesSettingsError naming it."""
    values: dict[str, Any] = {}
    for variable, attribute in _NAMES.items():
        if value := env.get(variable, "").strip():
            values[attribute] = value
    if "worker_id" not in values and (shared := env.get("CODEEXEC_WORKER_ID", "").strip()):
        # the worker's own identity: the pods it left are the runs it reports lost
        if not _LABEL_VALUE.match(shared):
            raise KubernetesSettingsError(
                f"CODEEXEC_WORKER_ID {shared!r} is not a label value (<= 63 of "
                "[A-Za-z0-9-_.]): set CODEEXEC_K8S_WORKER_ID for the pods' label"
            )
        values["worker_id"] = shared
    for variable, (attribute, kind) in _NUMBERS.items():
        if text := env.get(variable, "").strip():
            try:
                number = kind(text)
            except ValueError:
                raise KubernetesSettingsError(
                    f"{variable} must be a {'whole ' if kind is int else ''}number, not {text!r}"
                ) from None
            if number < 0 or number != number:
                raise KubernetesSettingsError(f"{variable} must not be negative, not {text!r}")
            values[attribute] = number
    if text := env.get("CODEEXEC_K8S_REQUIRE_NETWORK_POLICY", "").strip():
        if text not in ("0", "1"):
            raise KubernetesSettingsError(
                f"CODEEXEC_K8S_REQUIRE_NETWORK_POLICY must be 0 or 1, not {text!r}"
            )
        values["require_network_policy"] = text == "1"
    if text := env.get("CODEEXEC_K8S_IMAGES", "").strip():
        try:
            values["catalog"] = parse_catalog(text)
        except CatalogError as error:
            raise KubernetesSettingsError(str(error)) from None
    if text := env.get("CODEEXEC_K8S_NODE_SELECTOR", "").strip():
        selector = _json("CODEEXEC_K8S_NODE_SELECTOR", text)
        if not isinstance(selector, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in selector.items()
        ):
            raise KubernetesSettingsError(
                "CODEEXEC_K8S_NODE_SELECTOR must be a JSON object of string labels"
            )
        values["node_selector"] = selector
    if text := env.get("CODEEXEC_K8S_TOLERATIONS", "").strip():
        tolerations = _json("CODEEXEC_K8S_TOLERATIONS", text)
        if not isinstance(tolerations, list) or not all(isinstance(t, dict) for t in tolerations):
            raise KubernetesSettingsError(
                "CODEEXEC_K8S_TOLERATIONS must be a JSON list of toleration objects"
            )
        values["tolerations"] = tuple(tolerations)
    return KubernetesSettings(**values)


def _json(variable: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise KubernetesSettingsError(f"{variable} must be JSON: {error}") from None
