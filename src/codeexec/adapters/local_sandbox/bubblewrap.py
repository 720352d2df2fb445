"""BubblewrapSandbox: the Sandbox port on this host, one bubblewrap box per stage of a run."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence

from codeexec.adapters.local_sandbox import ownership, seccomp, uidrange
from codeexec.adapters.local_sandbox.boxcommand import box_ops
from codeexec.adapters.local_sandbox.cgroup_discovery import find_cgroups
from codeexec.adapters.local_sandbox.cgroups import CgroupTree, RunCgroup
from codeexec.adapters.local_sandbox.faststart import FastStart
from codeexec.adapters.local_sandbox.languages import choose, detect_toolchains
from codeexec.adapters.local_sandbox.prepared import PreparedBox
from codeexec.adapters.local_sandbox.run import BubblewrapRun
from codeexec.adapters.local_sandbox.stages import RunStages
from codeexec.adapters.local_sandbox.workroot import WorkRoot
from codeexec.adapters.local_sandbox.workspace import Workspace, check_names
from codeexec.domain.model import Limits, RunSpec
from codeexec.ports.sandbox import (
    Language,
    Sandbox,
    SandboxAlreadyStarted,
    SandboxRun,
    SandboxUnavailable,
)

INSTALL_HINT = "install it with `apt-get install bubblewrap` (Debian/Ubuntu package `bubblewrap`)"
_CLOSE_TIMEOUT_S = 10.0
_FAST_START_TRIES = 3
"""After this many zygotes failed to start (or to make a box), bubblewrap per stage only."""
log = logging.getLogger(__name__)


class BubblewrapSandbox(Sandbox):
    """Runs each stage in fresh namespaces (no network, own pids), on a read-only runtime, in
    a private size-limited work dir, as a per-run unprivileged uid with no capabilities, with
    limits enforced from outside the box (cgroups where writable, else rlimits)."""

    runs_survive_restart = False

    def __init__(
        self,
        *,
        bwrap_path: str | None = None,
        setpriv_path: str | None = None,
        work_root: str | None = None,
        scratch_bytes: int = 64 * 2**20,
        mount_workspace: bool = True,
        uid_base: int = 1_000_000,
        uid_count: int = 4096,
        uid_ranges: int = 64,
        uid_lock_file: str = uidrange.DEFAULT_LOCK_FILE,
        use_cgroups: bool = True,
        cgroup_parent: str | None = None,
        use_seccomp: bool = True,
        search_path: str | None = None,
        fast_start: bool = True,
        pool_size: int = 8,
    ) -> None:
        self._bwrap = bwrap_path if bwrap_path is not None else shutil.which("bwrap")
        self._as_root = os.geteuid() == 0
        self._setpriv = (setpriv_path or shutil.which("setpriv")) if self._as_root else None
        self._work = WorkRoot(
            work_root or os.path.join(tempfile.gettempdir(), "codeexec-sandbox"),
            scratch_bytes,
            mount=mount_workspace,
        )
        self._scratch_bytes = scratch_bytes
        self._uids = uidrange.InstanceUids(uid_lock_file, uid_base, uid_count, uid_ranges)
        self._use_cgroups = use_cgroups
        self._cgroup_parent = cgroup_parent
        self._cgroups: CgroupTree | None = None
        self._cgroups_known = False
        self._seccomp = seccomp.filter_program() if use_seccomp and seccomp.supported() else None
        self._search_path = search_path
        self._started: set[str] = set()
        self._active: dict[str, BubblewrapRun] = {}
        self._fast_start = fast_start
        self._pool_size = pool_size
        self._fast: FastStart | None = None
        self._fast_failures = 0

    def _available(self) -> bool:
        return bool(self._bwrap) and os.access(self._bwrap or "", os.X_OK)

    def _require(self) -> None:
        if not self._available():
            raise SandboxUnavailable(
                f"bubblewrap (bwrap) is not available at {self._bwrap or 'any PATH entry'}: "
                f"refusing to run untrusted code without it; {INSTALL_HINT}"
            )
        if self._as_root and (not self._setpriv or not os.access(self._setpriv, os.X_OK)):
            raise SandboxUnavailable(
                "setpriv (util-linux) is needed to drop to an unprivileged uid; "
                "install it with `apt-get install util-linux`"
            )

    def _cgroup_tree(self) -> CgroupTree | None:
        if not self._cgroups_known:
            self._cgroups = find_cgroups(self._cgroup_parent) if self._use_cgroups else None
            self._cgroups_known = True
        return self._cgroups

    @property
    def uid_range(self) -> range | None:
        """The uids this instance runs code as (None until claimed, or when not root)."""
        return self._uids.held

    async def languages(self) -> Sequence[Language]:
        # Toolchains only: an API process (which runs no code, and may be on a host without
        # bubblewrap) must not claim uids or start the zygote just to list them.
        return [tc.language for tc in await detect_toolchains(self._search_path)]

    async def prepare(self) -> None:
        """At the worker's start: claim uids, clean what dead instances left, build the
        boxes' shared /etc and /dev and start the zygote now, not in a first run."""
        self._require()
        if self._as_root:
            self._uids.claim()
        self._work.etc()
        self._work.dev()
        self._cgroup_tree()
        await self._start_fast()

    def _fast_possible(self) -> bool:
        # The zygote builds boxes itself: it needs root, a tmpfs of ours for the boxes' /dev,
        # and (for the filter) the architecture our seccomp program is written for.
        return (
            self._fast_start
            and self._fast_failures < _FAST_START_TRIES
            and self._as_root
            and self._work.dev() is not None
            and (self._seccomp is not None or platform.machine() != "x86_64")
        )

    async def _start_fast(self) -> None:
        if not self._fast_possible():
            return
        if self._fast is None:
            tree = self._cgroup_tree()

            def make_cgroup(name: str) -> RunCgroup | None:
                return None if tree is None else tree.create(name, Limits())

            def ops_for(workspace: Workspace, binds: tuple[str, ...]) -> list[tuple[str, ...]]:
                return box_ops(
                    etc=self._work.etc(),
                    dev=self._work.dev(),
                    scratch_bytes=self._scratch_bytes,
                    binds=binds,
                    workspace=workspace.path,
                )

            self._fast = FastStart(
                make_workspace=lambda name: self._work.create(name, 0),
                make_cgroup=make_cgroup,
                ops_for=ops_for,
                seccomp=self._seccomp,
                pool_size=self._pool_size,
            )
        if not self._fast.running:
            toolchains = await detect_toolchains(self._search_path)
            try:
                await self._fast.start(toolchains)
            except Exception as exc:  # the cold path still works: say why and use it
                self._fast_failures += 1
                log.warning("sandbox fast start unavailable, using bubblewrap per stage: %s", exc)
                await self._fast.close()

    async def start(self, sandbox_id: str, spec: RunSpec) -> SandboxRun:
        self._require()
        if sandbox_id in self._started:
            raise SandboxAlreadyStarted(sandbox_id)
        toolchain = choose(await detect_toolchains(self._search_path), spec.language, spec.version)
        if sandbox_id in self._started:  # raced with another start while detecting
            raise SandboxAlreadyStarted(sandbox_id)
        check_names(spec.files)
        # As root each run gets a uid of its own; otherwise the code runs as our uid, mapped
        # through a user namespace (weaker: per-uid limits then count our processes too).
        uid = self._uids.acquire() if self._as_root else os.geteuid()
        self._started.add(sandbox_id)
        name = ownership.new_id()

        boxes: list[PreparedBox] | None = None
        if self._fast_possible():
            await self._start_fast()
        if self._fast is not None and self._fast.running:
            boxes = [self._fast.take(toolchain.binds)]
            if toolchain.recipe.compile is not None:  # the run stage's box, ready after it
                boxes.append(self._fast.make_for(boxes[0].workspace, toolchain.binds))
        tree = self._cgroup_tree()
        if tree is not None and (boxes is None or not boxes[0].ready):
            # As early as possible: the first move into a cgroup after a quiet spell is slow,
            # and this run's box joins its cgroup on the way to its code (a prepared box
            # joined it ahead).
            tree.keep_warm()

        async def open_workspace() -> Workspace:
            if boxes:
                workspace = boxes[0].workspace
                workspace.give_to(uid)
            else:
                workspace = self._work.create(name, uid)
            try:
                workspace.write(spec.files)
            except BaseException:
                workspace.remove()
                raise
            return workspace

        def on_end() -> None:
            self._active.pop(sandbox_id, None)
            if self._as_root:
                self._uids.release(uid)

        stages = RunStages(self, uid, name, tuple(f.name for f in spec.files), boxes)
        run = BubblewrapRun(sandbox_id, spec, toolchain, open_workspace, stages, on_end)
        self._active[sandbox_id] = run
        return run

    async def stop(self, sandbox_id: str) -> bool:
        run = self._active.get(sandbox_id)
        if run is None or run.ended:
            return False
        run.cancel()
        return True

    async def close(self) -> None:
        runs = list(self._active.values())
        for run in runs:
            run.cancel()
        if runs:
            await asyncio.wait(
                [asyncio.ensure_future(r.finished()) for r in runs], timeout=_CLOSE_TIMEOUT_S
            )
        if self._fast is not None:
            await self._fast.close()
            self._fast = None
        if self._cgroups is not None:
            self._cgroups.close()
        self._work.close()
        self._uids.close()

    def enforced_limits(self) -> Mapping[str, str]:
        if not self._available():
            return {}
        tree = self._cgroup_tree()
        cg = f"cgroup {tree.version}" if tree else None
        tree_cpu = tree is not None and (tree.version == "v2" or "cpuacct" in tree.controllers)
        cpu = (
            f"{cg} CPU accounting for the whole tree, polled; plus RLIMIT_CPU per process"
            if tree_cpu
            else "RLIMIT_CPU per process (no cgroup: a tree of processes is not summed)"
        )
        mounted = self._work.probe_mount()
        own_uid = self._as_root
        limits = {
            "wall_time_s": "supervisor deadline; SIGKILL to the box's pid 1 ends its pid namespace",
            "cpu_time_s": cpu,
            "memory_bytes": (
                f"{cg} memory limit (swap included), OOM kill reported"
                if cg
                else "RLIMIT_AS per process (virtual memory)"
            ),
            "processes": " and ".join(
                [f"{cg} pids.max"] * bool(cg) + ["RLIMIT_NPROC for the run's own uid"] * own_uid
            )
            or "not enforced: needs root (a uid per run) or a writable pids cgroup",
            "output_bytes": "counted per stream by the supervisor; truncated, then the box killed",
            "file_size_bytes": "RLIMIT_FSIZE",
            "open_files": "RLIMIT_NOFILE",
            "work_dir": (
                f"tmpfs of {self._scratch_bytes} bytes for /box, /tmp and /dev/shm"
                if mounted
                else f"tmpfs of {self._scratch_bytes} bytes for /tmp and "
                "/dev/shm; /box is a plain directory (mounting not permitted)"
            )
            + "; /box on the host: mode 0700, the run's uid's, at a random name, files 0600",
            "network": "none: an empty network namespace (loopback only, nothing listening)"
            + ("; sockets of the AF_UNIX family only (seccomp)" if self._seccomp else ""),
            "user_ids": self._uids.describe()
            if self._as_root
            else "the server's own, mapped through a user namespace (not root: no uid per run)",
            "isolation": (
                "bubblewrap: new pid, net, ipc, uts, mount and cgroup namespaces; "
                "read-only runtime; "
                + ("a per-run uid set by setpriv, " if self._as_root else "a user namespace, ")
                + "no capabilities, no_new_privs"
                + (", seccomp filter" if self._seccomp else "")
            ),
        }
        if self._fast_possible():
            limits["isolation"] = (
                "boxes forked by a zygote and built as bubblewrap builds them (bubblewrap "
                "per stage when it is unavailable): new pid, net, ipc, uts, mount and cgroup "
                "namespaces; read-only runtime; a per-run uid set as setpriv sets it, "
                "no capabilities, no_new_privs" + (", seccomp filter" if self._seccomp else "")
            )
        return limits
