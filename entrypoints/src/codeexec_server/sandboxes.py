"""The sandboxes by name (CODEEXEC_SANDBOX=local|fake|kubernetes), importing only the one chosen.

The local sandbox's start-up knobs: CODEEXEC_SANDBOX_POOL_SIZE (boxes prepared ahead at most,
default 8; 0: made on demand) and CODEEXEC_SANDBOX_FAST_START=0 (bubblewrap per stage)."""

from __future__ import annotations

import os
from typing import Any

from codeexec.ports.sandbox import Sandbox
from codeexec_server.deployment import ConfigError, import_adapter


def fake_sandbox() -> Sandbox:
    from codeexec.adapters.fake_sandbox import FakeSandbox

    return FakeSandbox()


def local_sandbox() -> Sandbox:
    """CODEEXEC_SANDBOX_POOL_SIZE: boxes prepared ahead at most (default 8; 0: on demand);
    CODEEXEC_SANDBOX_FAST_START=0: bubblewrap per stage instead of the forked interpreter."""
    from codeexec.adapters.local_sandbox import BubblewrapSandbox

    size = os.environ.get("CODEEXEC_SANDBOX_POOL_SIZE", "8").strip() or "8"
    if not size.isdigit():
        raise ConfigError(f"CODEEXEC_SANDBOX_POOL_SIZE must be a whole number, not {size!r}")
    fast = os.environ.get("CODEEXEC_SANDBOX_FAST_START", "1").strip()
    if fast not in ("0", "1", ""):
        raise ConfigError(f"CODEEXEC_SANDBOX_FAST_START must be 0 or 1, not {fast!r}")
    sandbox: Sandbox = BubblewrapSandbox(pool_size=int(size), fast_start=fast != "0")
    return sandbox


def kubernetes_sandbox() -> Sandbox:
    # The Kubernetes distribution supplies its sandbox, configured from its own variables
    # (CODEEXEC_K8S_*; a bad one is a ConfigError naming it: exit 78).
    kubernetes: Any = import_adapter("codeexec_kubernetes")
    try:
        sandbox: Sandbox = kubernetes.sandbox_from_env(os.environ)
    except kubernetes.KubernetesSettingsError as error:
        raise ConfigError(str(error)) from None
    return sandbox


def make_sandbox(kind: str) -> Sandbox:
    """The sandbox by name (local, fake or kubernetes), outside a container (`codeexec run`)."""
    makers = {"local": local_sandbox, "fake": fake_sandbox, "kubernetes": kubernetes_sandbox}
    if kind not in makers:
        raise ConfigError(f"CODEEXEC_SANDBOX must be one of {', '.join(makers)}, not {kind!r}")
    return makers[kind]()
