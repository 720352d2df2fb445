"""Which cgroups this host lets us use: v2 if memory and pids can be delegated, else v1."""

from __future__ import annotations

import os

from codeexec.adapters.local_sandbox import ownership
from codeexec.adapters.local_sandbox.cgroups import (
    CgroupTree,
    CgroupV1Tree,
    CgroupV2Tree,
    read,
    write,
)


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(fstype, mount point, super options) of every cgroup mount."""
    found = []
    for line in read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fstype, _source, options = [*right.split(), "", "", ""][:3]
        if fstype in ("cgroup", "cgroup2"):
            found.append((fstype, left.split()[4], set(options.split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """controller -> this process's cgroup path ("unified" for the v2 hierarchy)."""
    paths = {}
    for line in read("/proc/self/cgroup").splitlines():
        _id, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else ["unified"]:
            paths[c] = path
    return paths


def _writable_dir(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK)


def find_cgroups(parent: str | None = None) -> CgroupTree | None:
    """The cgroup tree runs go into: v2 if its memory and pids controllers can be delegated
    to us, else v1, else None (limits then fall back to rlimits). Run cgroups are nested
    under this process's own cgroup (or `parent`, a path from the hierarchy root) so the
    host's limits on this process still apply to them."""
    # Named at random, not by pid: the name shows in a box's /proc/self/cgroup.
    owner = f"codeexec.{ownership.new_id()}"
    try:
        mounts, own = _mounts(), _own_paths()
    except OSError:
        return None
    for fstype, point, _ in mounts:
        if fstype != "cgroup2":
            continue
        base = point + (parent or own.get("unified", "/")).rstrip("/")
        try:
            controllers = set(read(os.path.join(base, "cgroup.controllers")).split())
            if {"memory", "pids"} <= controllers and _writable_dir(base):
                enabled = set(read(os.path.join(base, "cgroup.subtree_control")).split())
                if not {"memory", "pids"} <= enabled:
                    write(os.path.join(base, "cgroup.subtree_control"), "+memory +pids")
                own_dir = point + own.get("unified", "/").rstrip("/")
                return CgroupV2Tree(
                    {"unified": os.path.join(base, owner)},
                    os.path.join(own_dir, "cgroup.procs"),
                )
        except OSError:
            continue
    parents: dict[str, str] = {}
    own_procs = None
    for fstype, point, options in mounts:
        for controller in ("memory", "pids", "cpuacct"):
            if fstype == "cgroup" and controller in options and controller not in parents:
                base = point + (parent or own.get(controller, "/")).rstrip("/")
                if _writable_dir(base):
                    parents[controller] = os.path.join(base, owner)
                    own_dir = point + own.get(controller, "/").rstrip("/")
                    own_procs = os.path.join(own_dir, "cgroup.procs")
    if {"memory", "pids"} <= parents.keys():
        return CgroupV1Tree(parents, own_procs)
    return None
