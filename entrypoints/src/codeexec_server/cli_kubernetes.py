"""`codeexec kubernetes render-pod`: the objects the Kubernetes sandbox would create, as YAML.

Imports the adapter only here and only when asked (a missing package exits 78 naming it)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from codeexec_server.deployment import ConfigError, import_adapter


class UnknownLanguageChoice(ValueError):
    """--language names no entry of the image catalog."""


def add_parser(sub: Any) -> None:
    kubernetes = sub.add_parser("kubernetes", help="the Kubernetes sandbox (codeexec-kubernetes)")
    commands = kubernetes.add_subparsers(dest="kubernetes_command", required=True)
    render = commands.add_parser(
        "render-pod",
        help="print, as YAML, the ConfigMap and pod a sample run would create "
        "(configured by CODEEXEC_K8S_*), for review and policy checks",
    )
    render.add_argument("--language", required=True, help="a language of the image catalog")


def run(args: argparse.Namespace) -> int:
    adapter: Any = import_adapter("codeexec_kubernetes")
    from codeexec.ports.sandbox import UnknownLanguage

    try:
        text = adapter.render_run_objects(os.environ, args.language)
    except adapter.KubernetesSettingsError as error:
        raise ConfigError(str(error)) from None
    except UnknownLanguage as error:
        raise UnknownLanguageChoice(str(error)) from None
    sys.stdout.write(text)
    return 0
