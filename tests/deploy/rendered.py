"""The deploy base as `kubectl kustomize deploy/kubernetes` renders it: a list of dicts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

BASE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def render(base: Path = BASE) -> list[dict[str, Any]]:
    """Every object of the base; a missing kubectl or a base that does not build fails."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not on PATH: `bash scripts/install.sh --test` installs it"
    done = subprocess.run(
        [kubectl, "kustomize", str(base)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"kubectl kustomize {base} failed: {done.stderr}"
    return [o for o in yaml.safe_load_all(done.stdout) if o is not None]


def named(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The objects of one kind by `namespace/name`."""
    return {
        f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o
        for o in manifests
        if o["kind"] == kind
    }
