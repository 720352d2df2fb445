"""What an executor pod needs beyond the restricted checks to be held by the deploy manifests.

`executor_violations(pod, manifests)` takes a pod as `codeexec kubernetes render-pod` prints
it and the rendered `deploy/kubernetes` objects: the pod must live in the namespace where the
deny-all NetworkPolicy and the executor quota are, carry the labels that policy selects, have
a deadline (the quota counts, and the namespace only admits, pods with one), never restart and
see no service links, and pass `restricted.violations` without a token."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tests.deploy.restricted import Obj, violations

PART_OF = "app.kubernetes.io/part-of"
COMPONENT = "app.kubernetes.io/component"
EXECUTOR_LABELS = {PART_OF: "codeexec", COMPONENT: "executor"}


def executor_policies(manifests: Iterable[Obj]) -> list[Obj]:
    """The NetworkPolicies that select executor pods by their labels."""
    return [
        o
        for o in manifests
        if o["kind"] == "NetworkPolicy"
        and (o["spec"].get("podSelector") or {}).get("matchLabels") == EXECUTOR_LABELS
    ]


def executor_violations(pod: Obj, manifests: Iterable[Obj]) -> list[str]:
    objects = list(manifests)
    return [*violations(pod), *_placement(pod, objects), *_lifetime(pod)]


def _placement(pod: Obj, manifests: list[Obj]) -> Iterator[str]:
    if pod.get("kind") != "Pod":
        yield f"kind: must be Pod (is {pod.get('kind')!r})"
    metadata = pod.get("metadata") or {}
    policies = executor_policies(manifests)
    if not policies:
        yield "manifests: no NetworkPolicy selects executor pods"
        return
    namespace = policies[0]["metadata"]["namespace"]
    if metadata.get("namespace") != namespace:
        yield (
            f"metadata.namespace: must be {namespace} (where the deny-all NetworkPolicy and "
            f"the executor quota are; is {metadata.get('namespace')!r})"
        )
    labels = metadata.get("labels") or {}
    for key, value in EXECUTOR_LABELS.items():
        if labels.get(key) != value:
            yield f"metadata.labels.{key}: must be {value} (the NetworkPolicy selects it)"
    account = (pod.get("spec") or {}).get("serviceAccountName", "default")
    if account != "default":
        yield f"spec.serviceAccountName: must be unset or default (is {account!r})"


def _lifetime(pod: Obj) -> Iterator[str]:
    spec = pod.get("spec") or {}
    if spec.get("restartPolicy") != "Never":
        yield f"spec.restartPolicy: must be Never (is {spec.get('restartPolicy')!r})"
    deadline = spec.get("activeDeadlineSeconds")
    if not isinstance(deadline, int) or deadline <= 0:
        yield f"spec.activeDeadlineSeconds: must be a positive number of seconds (is {deadline!r})"
    if spec.get("enableServiceLinks") is not False:
        yield "spec.enableServiceLinks: must be false (no other service's address in the env)"
