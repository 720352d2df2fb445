"""codeexec-kubernetes: the sandbox port on Kubernetes, one hardened pod per run."""

from codeexec_kubernetes.catalog import DEFAULT_CATALOG, LanguageImage
from codeexec_kubernetes.objects import RunObjects, run_objects, sample_spec
from codeexec_kubernetes.render import render_run_objects
from codeexec_kubernetes.sandbox import KubernetesSandbox, sandbox_from_env
from codeexec_kubernetes.settings import (
    KubernetesSettings,
    KubernetesSettingsError,
    settings_from_env,
)

__all__ = [
    "DEFAULT_CATALOG",
    "KubernetesSandbox",
    "KubernetesSettings",
    "KubernetesSettingsError",
    "LanguageImage",
    "RunObjects",
    "render_run_objects",
    "run_objects",
    "sample_spec",
    "sandbox_from_env",
    "settings_from_env",
]
