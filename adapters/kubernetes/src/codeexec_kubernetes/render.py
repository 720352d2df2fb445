"""The objects a sample run would create, as YAML: what operators review and policy-check."""

from __future__ import annotations

import json
from collections.abc import Mapping

import yaml

from codeexec.ports.sandbox import UnknownLanguage
from codeexec_kubernetes.catalog import find
from codeexec_kubernetes.objects import run_objects, sample_spec
from codeexec_kubernetes.settings import settings_from_env

SAMPLE_ID = "cx-00000000000000000000000000000000"


def render_run_objects(env: Mapping[str, str], language: str) -> str:
    """The objects of a sample run in `language`, configured by CODEEXEC_K8S_* in `env`, as
    a YAML stream: its ConfigMaps (one for the sample; a larger run has parts, owned by the
    first, as the pod is), then the pod as created."""
    settings = settings_from_env(env)
    image = find(settings.catalog, language)
    if image is None:
        names = ", ".join(e.name for e in settings.catalog)
        raise UnknownLanguage(f"--language: {language!r} is not in the catalog ({names})")
    objects = run_objects(settings, image, SAMPLE_ID, sample_spec(image))
    uid = "00000000-0000-0000-0000-000000000000"
    created = [objects.config_map, *objects.owned_parts(uid), objects.owned_pod(uid)]
    # through JSON: plain data, so YAML never writes anchors for shared dicts
    plain = json.loads(json.dumps(created))
    return yaml.dump_all(plain, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the launcher) as literal blocks, readable in a review."""


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _string)
