"""A kubelet for the fake API server: runs each pod's launcher as a real local process.

The pod's ConfigMap or projected volume becomes a directory, its emptyDirs temporary
directories, and its command runs with the mount paths mapped onto them; the process's
stdout is the pod log.
Phases, container states and activeDeadlineSeconds behave as a kubelet's do (no image, no
isolation: that is what only a real cluster shows). `manual` pods are left to the test."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from k8s_fake_api import FakeKube, now_text


class FakeKubelet:
    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube
        self.manual = False
        """True: pods stay Pending until the test writes their status."""
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.root = Path(tempfile.mkdtemp(prefix="fake-kubelet-"))
        self._started = asyncio.Condition()
        kube.on_pod_created = self._created
        kube.on_pod_deleted = self._deleted

    def _created(self, pod: dict[str, Any]) -> None:
        if self.manual:
            return
        task = asyncio.get_running_loop().create_task(self._run(pod))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _deleted(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    async def running(self, count: int) -> None:
        """Wait until `count` pods have their process running."""
        async with self._started:
            await self._started.wait_for(lambda: len(self.processes) >= count)

    async def close(self) -> None:
        for name in list(self.processes):
            self._deleted(name)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def _mounts(self, pod: dict[str, Any], base: Path) -> dict[str, Path]:
        """Mount path -> directory: ConfigMap volumes filled from the ConfigMap."""
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        mounts = {}
        for mount in pod["spec"]["containers"][0]["volumeMounts"]:
            volume = volumes[mount["name"]]
            directory = base / mount["name"]
            directory.mkdir(parents=True)
            sources = (volume.get("projected") or {}).get("sources") or [volume]
            for source in sources:
                if "configMap" in source:
                    self._project(source["configMap"]["name"], directory)
            mounts[mount["mountPath"]] = directory
        return mounts

    def _project(self, name: str, directory: Path) -> None:
        """A ConfigMap's keys as files; a key seen twice in one volume is the kubelet's
        error (conflicting paths), and a missing ConfigMap holds the pod back."""
        config_map = self.kube.objects[("configmaps", name)]
        items = [
            *((k, v.encode()) for k, v in config_map.get("data", {}).items()),
            *((k, base64.b64decode(v)) for k, v in config_map.get("binaryData", {}).items()),
        ]
        for key, data in items:
            path = directory / key
            assert not path.exists(), f"conflicting path {key} in the projected volume"
            path.write_bytes(data)

    async def _run(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        base = self.root / name
        try:
            mounts = self._mounts(pod, base)
        except KeyError:  # a ConfigMap missing: the kubelet retries the mount, pod Pending
            return

        def mapped(text: str) -> str:
            for path, directory in sorted(mounts.items(), key=lambda m: -len(m[0])):
                if text == path or text.startswith(path + "/"):
                    return str(directory) + text[len(path) :]
            return text

        argv = [mapped(a) for a in container["command"]]
        if argv[0] == "python3":
            argv[0] = sys.executable
        env = {e["name"]: mapped(e["value"]) for e in container.get("env", [])}
        env["PATH"] = os.environ["PATH"]
        started = now_text()
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=mapped(container["workingDir"]),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self.processes[name] = process
        async with self._started:
            self._started.notify_all()
        self._status(name, "Running", {"running": {"startedAt": started}})
        deadline = pod["spec"].get("activeDeadlineSeconds")
        assert process.stdout is not None
        try:
            async with asyncio.timeout(deadline):
                while data := await process.stdout.read(65536):
                    self.kube.append_log(name, data)
                code = await process.wait()
        except TimeoutError:
            _kill_group(process)
            await process.wait()
            if self.kube.pod(name) is not None:
                self.kube.close_log(name)
                terminated = {"exitCode": 137, "reason": "Error", "finishedAt": now_text()}
                self._status(
                    name,
                    "Failed",
                    {"terminated": terminated},
                    reason="DeadlineExceeded",
                    message=f"Pod was active on the node longer than {deadline}s",
                )
            return
        finally:
            _kill_group(process)
            self.processes.pop(name, None)
        if self.kube.pod(name) is None:
            return
        self.kube.close_log(name)
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": now_text(),
        }
        self._status(name, "Succeeded" if code == 0 else "Failed", {"terminated": terminated})

    def _status(self, name: str, phase: str, state: dict[str, Any], **extra: str) -> None:
        if self.kube.pod(name) is None:
            return
        ready = "running" in state
        container = {"name": "sandbox", "state": state, "ready": ready, "restartCount": 0}
        self.kube.set_status(name, {"phase": phase, "containerStatuses": [container], **extra})


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
