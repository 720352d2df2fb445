"""The objects of a run (pure function), `codeexec kubernetes render-pod`, and the settings:
restricted Pod Security, limits from the run, nothing through a shell, bad values named."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest
import yaml
from codeexec_server.cli import main
from codeexec_server.deployment import EX_CONFIG, ConfigError
from codeexec_server.sandboxes import make_sandbox
from k8s_specs import python

from codeexec.domain.model import RunSpec, SourceFile
from codeexec_kubernetes import (
    DEFAULT_CATALOG,
    KubernetesSandbox,
    KubernetesSettings,
    KubernetesSettingsError,
    run_objects,
    settings_from_env,
)


def pod_for(spec: RunSpec, **settings: Any) -> dict[str, Any]:
    objects = run_objects(KubernetesSettings(**settings), DEFAULT_CATALOG[0], "cx-a", spec)
    return objects.owned_pod("uid-1")


def test_the_pod_meets_the_restricted_pod_security_standard_and_more() -> None:
    pod = pod_for(python("print(1)", wall_time_s=7, memory_bytes=64 * 2**20))
    spec = pod["spec"]
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert not (spec["hostNetwork"] or spec["hostPID"] or spec["hostIPC"])
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] > 0
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory", "ephemeral-storage"}
    assert int(container["resources"]["limits"]["memory"]) == 64 * 2**20 + 32 * 2**20
    assert spec["activeDeadlineSeconds"] == 120 + 7 + 5
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for path in ("/tmp", "/work"):
        assert volumes[mounts[path]["name"]]["emptyDir"]["sizeLimit"] == str(64 * 2**20)
    assert mounts["/codeexec/payload"]["readOnly"] is True
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ConfigMap"
    assert "runtimeClassName" not in spec and "nodeSelector" not in spec


def test_runtime_class_node_selector_and_tolerations_are_applied() -> None:
    toleration = {"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}
    pod = pod_for(
        python("print(1)"),
        runtime_class="gvisor",
        node_selector={"pool": "sandbox"},
        tolerations=(toleration,),
    )
    assert pod["spec"]["runtimeClassName"] == "gvisor"
    assert pod["spec"]["nodeSelector"] == {"pool": "sandbox"}
    assert pod["spec"]["tolerations"] == [toleration]


def test_source_and_stdin_travel_as_data_and_the_command_is_an_argv() -> None:
    spec = RunSpec(
        language="python",
        files=(SourceFile(name="main.py", content=b"'; rm -rf / #"),),
        stdin=b"\x00\xff",
        args=("$(id)",),
    )
    objects = run_objects(KubernetesSettings(), DEFAULT_CATALOG[0], "cx-a", spec)
    plan = json.loads(objects.config_map["data"]["plan.json"])
    assert plan["stages"][0]["argv"] == ["python3", "-u", "main.py", "$(id)"]
    assert objects.config_map["binaryData"] == {"f0": "Jzsgcm0gLXJmIC8gIw==", "stdin": "AP8="}
    command = objects.pod["spec"]["containers"][0]["command"]
    assert command[0] == "python3" and "sh" not in command and "-c" not in command


def test_render_pod_prints_both_objects_as_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kubernetes", "render-pod", "--language", "python"]) == 0
    config_map, pod = yaml.safe_load_all(capsys.readouterr().out)
    assert (config_map["kind"], pod["kind"]) == ("ConfigMap", "Pod")
    (source,) = pod["spec"]["volumes"][0]["projected"]["sources"]
    assert source["configMap"]["name"] == config_map["metadata"]["name"]


def test_render_pod_names_what_is_wrong(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["kubernetes", "render-pod", "--language", "cobol"]) == 2
    assert "'cobol' is not in the catalog" in capsys.readouterr().err
    monkeypatch.setenv("CODEEXEC_K8S_CONCURRENCY", "many")
    assert main(["kubernetes", "render-pod", "--language", "python"]) == EX_CONFIG
    assert "CODEEXEC_K8S_CONCURRENCY must be a whole number" in capsys.readouterr().err
    monkeypatch.delenv("CODEEXEC_K8S_CONCURRENCY")
    monkeypatch.setitem(sys.modules, "codeexec_kubernetes", None)  # not installed
    assert main(["kubernetes", "render-pod", "--language", "python"]) == EX_CONFIG
    assert "pip install codeexec-kubernetes" in capsys.readouterr().err


def test_the_server_names_a_bad_setting_as_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CODEEXEC_K8S_NAMESPACE", "Bad Namespace")
    with pytest.raises(ConfigError, match="CODEEXEC_K8S_NAMESPACE must be a DNS label"):
        make_sandbox("kubernetes")
    monkeypatch.delenv("CODEEXEC_K8S_NAMESPACE")
    assert isinstance(make_sandbox("kubernetes"), KubernetesSandbox)  # nothing connects yet


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("CODEEXEC_K8S_NAMESPACE", "Not_A_Label", "CODEEXEC_K8S_NAMESPACE"),
        ("CODEEXEC_K8S_CONCURRENCY", "0", "CODEEXEC_K8S_CONCURRENCY"),
        ("CODEEXEC_K8S_UID", "0", "CODEEXEC_K8S_UID"),
        ("CODEEXEC_K8S_CPU", "lots", "CODEEXEC_K8S_CPU"),
        ("CODEEXEC_K8S_START_TIMEOUT_S", "soon", "CODEEXEC_K8S_START_TIMEOUT_S"),
        ("CODEEXEC_K8S_NODE_SELECTOR", '["pool"]', "CODEEXEC_K8S_NODE_SELECTOR"),
        ("CODEEXEC_K8S_TOLERATIONS", "{}", "CODEEXEC_K8S_TOLERATIONS"),
        ("CODEEXEC_K8S_IMAGES", "{", "CODEEXEC_K8S_IMAGES"),
        ("CODEEXEC_K8S_IMAGES", '{"c": {"image": "gcc", "version": "12"}}', "['c'].run"),
        ("CODEEXEC_K8S_RUNTIME_CLASS", "g visor", "CODEEXEC_K8S_RUNTIME_CLASS"),
    ],
)
def test_each_bad_setting_is_named(variable: str, value: str, named: str) -> None:
    with pytest.raises(KubernetesSettingsError, match=re.escape(named)):
        settings_from_env({variable: value})


def test_the_worker_id_labels_the_pods_unless_the_adapter_has_its_own() -> None:
    assert settings_from_env({"CODEEXEC_WORKER_ID": "worker-3"}).worker_id == "worker-3"
    both = {"CODEEXEC_WORKER_ID": "worker-3", "CODEEXEC_K8S_WORKER_ID": "pod-9"}
    assert settings_from_env(both).worker_id == "pod-9"
    with pytest.raises(KubernetesSettingsError, match="set CODEEXEC_K8S_WORKER_ID"):
        settings_from_env({"CODEEXEC_WORKER_ID": "worker 3/with spaces"})


def test_settings_from_env() -> None:
    images = {
        "c": {
            "image": "registry.example/c:12",
            "version": "12",
            "compile": ["gcc", "-O2", "-o", "main", "{files}"],
            "run": ["./main"],
            "extension": ".c",
        }
    }
    settings = settings_from_env(
        {
            "CODEEXEC_K8S_NAMESPACE": "sandboxes",
            "CODEEXEC_K8S_IMAGES": json.dumps(images),
            "CODEEXEC_K8S_CONCURRENCY": "8",
            "CODEEXEC_K8S_WORKER_ID": "worker-7",
            "KUBECONFIG": "/etc/kube/config",
        }
    )
    assert (settings.namespace, settings.concurrency, settings.worker_id) == (
        "sandboxes",
        8,
        "worker-7",
    )
    (c,) = settings.catalog
    assert c.compile_argv(["main.c", "x.c"], ["-lm"]) == [
        "gcc",
        "-O2",
        "-o",
        "main",
        "main.c",
        "x.c",
        "-lm",
    ]
    assert c.language.compiled and settings.kubeconfig == "/etc/kube/config"
