"""Whether the namespace's NetworkPolicies cut executor pods off: no ingress, no egress.

Policies add up: a pod is isolated for a direction when some policy selecting it has that
policy type, and then it may reach (or be reached by) whatever any selecting policy allows.
So executor pods are cut off only when the selecting policies cover both directions and
none of them allows anything. (Whether the network plugin enforces policies at all, the API
cannot tell.)"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DIRECTIONS = {"Ingress": "ingress", "Egress": "egress"}


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a pod's labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _types(spec: Mapping[str, Any]) -> set[str]:
    declared = spec.get("policyTypes")
    if declared:
        return set(declared)
    # The API's default: Ingress always, Egress when the policy has egress rules.
    return {"Ingress", *(["Egress"] if spec.get("egress") else [])}


def isolation_gap(policies: Iterable[Mapping[str, Any]], labels: Mapping[str, str]) -> str | None:
    """None when pods with these labels get no traffic in or out; else what lets some through."""
    selecting = [
        p for p in policies if selects((p.get("spec") or {}).get("podSelector") or {}, labels)
    ]
    covered = {t for p in selecting for t in _types(p.get("spec") or {})}
    missing = [d for d in DIRECTIONS if d not in covered]
    if missing:
        return f"no NetworkPolicy denies executor pods {' or '.join(m.lower() for m in missing)}"
    for policy in selecting:
        spec = policy.get("spec") or {}
        for kind, rules in DIRECTIONS.items():
            if kind in _types(spec) and spec.get(rules):
                name = (policy.get("metadata") or {}).get("name", "?")
                return f"NetworkPolicy {name} allows executor pods some {rules}"
    return None
