"""Runs a container of the rendered manifests as a process shaped like its pod, on this host.

No cluster runs here, so bubblewrap stands in for the container runtime: the root filesystem
read-only, each emptyDir a fresh root-owned 0777 tmpfs (as the kubelet makes one), the pod's
uid, gid and fsGroup (setpriv), the environment built only from the ConfigMap, the Secret and
the container's `env`, and the container's own command. What differs, and why: the host's
Python and this checkout stand in for the image (made reachable for the pod's uid where a
parent directory is closed), the container ports are mapped to free ports (the host network
is shared), and the values a test must change (the sandbox, the broker's replication) are
given as overrides."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# What a Python process of this checkout reads: the checkout, the venv, the interpreter's prefix.
NEEDED = (REPO, Path(sys.prefix), Path(sys.base_prefix).resolve())
IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}  # deploy/image/Dockerfile


def _closed_ancestors(paths: tuple[Path, ...]) -> list[Path]:
    """Directories above `paths` that other users cannot enter (such as /root), outermost
    first: each is replaced by an empty tmpfs and the paths below it bound in again."""
    closed: set[Path] = set()
    for path in paths:
        for parent in reversed(path.parents):
            if parent != Path("/") and not os.stat(parent).st_mode & stat.S_IXOTH:
                closed.add(parent)
    return sorted(closed, key=lambda p: len(p.parts))


def _mountable(path: Path) -> list[str]:
    """A mount point missing from the read-only root needs a writable parent: a tmpfs on the
    nearest directory that exists (the image would have made the directory)."""
    if path.exists():
        return []
    existing = next(p for p in path.parents if p.exists())
    assert existing != Path("/"), f"{path}: cannot make a mount point right under /"
    return ["--tmpfs", str(existing)]


def environment(
    container: Mapping[str, Any], config: Mapping[str, str], secret: Mapping[str, str], pod: str
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom in order, then env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            env.update(config)
        elif "secretRef" in source:
            env.update(secret)
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            field = entry["valueFrom"]["fieldRef"]["fieldPath"]
            assert field == "metadata.name", f"env {entry['name']}: {field} is not simulated"
            env[entry["name"]] = pod
    return env


def pod_argv(
    workload: Mapping[str, Any],
    env: Mapping[str, str],
    ports: Mapping[int, int],
) -> list[str]:
    """bwrap and setpriv around the workload's one container; `ports` maps its container
    ports to host ports (each `--port`/`--health-port` argument is rewritten)."""
    spec = workload["spec"]["template"]["spec"]
    [container] = spec["containers"]
    context = spec.get("securityContext") or {}
    bwrap, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
    assert bwrap and setpriv, missing_tools()
    argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    argv += ["--die-with-parent", "--chdir", "/", "--clearenv"]
    emptydirs = {v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v}
    for mount in container.get("volumeMounts") or []:
        assert mount["name"] in emptydirs, f"volume {mount['name']}: only emptyDirs simulated"
        argv += [*_mountable(Path(mount["mountPath"])), "--perms", "0777"]
        argv += ["--tmpfs", mount["mountPath"]]
    # After the emptyDirs, so a checkout under /tmp stays visible.
    for closed in _closed_ancestors(NEEDED):
        argv += ["--tmpfs", str(closed)]
    for needed in NEEDED:
        argv += ["--ro-bind", str(needed), str(needed)]
    search = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
    for key, value in {**IMAGE_ENV, **env, "PATH": search}.items():
        argv += ["--setenv", key, value]
    argv += [setpriv, f"--reuid={context['runAsUser']}", f"--regid={context['runAsGroup']}"]
    argv += [f"--groups={context['fsGroup']}", "--"]
    command = list(container["command"])
    for flag in ("--port", "--health-port"):
        if flag in command:
            at = command.index(flag) + 1
            command[at] = str(ports[int(command[at])])
    return argv + command


def missing_tools() -> str | None:
    if os.geteuid() != 0:
        return "running as a pod's uid needs root (setpriv --reuid)"
    for tool in ("bwrap", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (bubblewrap, util-linux)"
    return None


def terminate_container(bwrap_pid: int) -> None:
    """SIGTERM to the container's process, as the kubelet sends it (bwrap passes no signal on)."""
    children = Path(f"/proc/{bwrap_pid}/task/{bwrap_pid}/children").read_text().split()
    for child in children:
        os.kill(int(child), signal.SIGTERM)
