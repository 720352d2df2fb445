"""Every Deployment of the base starts as its manifest runs it (read-only root, the pod's uid,
only its emptyDirs writable, configured only by the ConfigMap and the Secret), answers its
readiness probe, serves a run end to end, and stops on SIGTERM with exit 0 within its grace
period. tansu and PostgreSQL stand in for Kafka and the database, the fake sandbox for pods."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx

from codeexec_kafka.tansu import free_port
from tests.deploy.as_pod import environment, missing_tools, pod_argv, terminate_container
from tests.deploy.rendered import named
from tests.system.cluster import Cluster, Node

# Started in this order, each once the one before is ready (docs/deploy-distributed.md).
ORDER = ("api", "relay", "coordinator", "saga", "projections", "dead-letters", "replay", "worker")
# The test's stand-ins: scripted runs instead of pods, one tansu broker instead of three.
OVERRIDES = {"CODEEXEC_SANDBOX": "fake", "CODEEXEC_KAFKA_REPLICATION_FACTOR": "1"}


def probe_url(container: dict[str, Any], ports: dict[int, int]) -> str:
    by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container["readinessProbe"]["httpGet"]
    port = by_name.get(probe["port"], probe["port"])
    return f"http://127.0.0.1:{ports[port]}{probe['path']}"


def test_every_deployment_runs_as_its_manifest_says(
    manifests: list[dict[str, Any]], tmp_path: Path
) -> None:
    assert (why := missing_tools()) is None, why
    deployments = named(manifests, "Deployment")
    [config] = named(manifests, "ConfigMap").values()
    with Cluster(tmp_path) as cluster:
        secret = {
            "CODEEXEC_KAFKA_BOOTSTRAP": cluster.broker.bootstrap,
            **{k: v for k, v in cluster.store_env.items() if k != "CODEEXEC_STORE"},
        }
        for name in ORDER:
            deployment = deployments[f"codeexec/codeexec-{name}"]
            [container] = deployment["spec"]["template"]["spec"]["containers"]
            ports = {p["containerPort"]: free_port() for p in container["ports"]}
            env = environment(container, config["data"], secret, pod=f"codeexec-{name}-0")
            argv = pod_argv(deployment, {**env, **OVERRIDES}, ports)
            node = Node(name, argv, {}, tmp_path / name / "data", probe_url(container, ports))
            cluster.nodes[name] = node
        cluster.start(timeout=120)

        key = cluster.create_key(admin=True)
        api = cluster.url("api").removesuffix("/health")
        answer = httpx.post(
            f"{api}/api/v1/executions?wait=true",
            json={"language": "fake", "source": "out héllo\nerr bye\nexit 3"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        view = answer.json()
        assert (view["status"], view["exit_code"]) == ("runtime_error", 3), view
        assert (view["stdout"], view["stderr"]) == ("héllo\n", "bye\n")

        for name in reversed(ORDER):
            node = cluster.nodes[name]
            grace = deployments[f"codeexec/codeexec-{name}"]["spec"]["template"]["spec"][
                "terminationGracePeriodSeconds"
            ]
            terminate_container(node.pid)
            assert node.process is not None
            try:
                code = node.process.wait(grace)
            except subprocess.TimeoutExpired:
                code = None
            assert code == 0, f"{name} ended {code} on SIGTERM:\n{node.log_tail()}"
