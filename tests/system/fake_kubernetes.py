"""The Kubernetes adapter's fake API server (with its kubelet running each pod's launcher as a
local process) in a process of its own, and the kubeconfig that points the workers at it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import TracebackType

SERVER = Path(__file__).resolve().parents[2] / "adapters/kubernetes/tests/k8s_fake_server.py"


class FakeKubernetes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> FakeKubernetes:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "fake-kubernetes.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER)], stdout=subprocess.PIPE, stderr=log, text=True
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://"), "the fake API server did not start"
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def env(self) -> dict[str, str]:
        """What a worker needs to run its sandboxes as pods on the fake."""
        kubeconfig = self.root / "kubeconfig.json"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "worker", "user": {"token": "unused"}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "worker"}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return {"KUBECONFIG": str(kubeconfig), "CODEEXEC_K8S_NAMESPACE": "executions"}

    def objects(self) -> dict[str, list[str]]:
        """The pods and ConfigMaps that exist now."""
        with urllib.request.urlopen(f"{self.url}/fake/objects", timeout=10) as response:
            found: dict[str, list[str]] = json.load(response)
        return found
