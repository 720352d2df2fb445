"""The host side of each stage of one run: its box (prepared or bubblewrap), cgroup and limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from codeexec.adapters.local_sandbox import rlimits as rl
from codeexec.adapters.local_sandbox.boxcommand import (
    BoxFiles,
    box_ops,
    bwrap_argv,
    environment,
    identity_files,
)
from codeexec.adapters.local_sandbox.cgroup_run import RunCgroup
from codeexec.adapters.local_sandbox.launch import BwrapLaunch, Launch, PreparedLaunch
from codeexec.adapters.local_sandbox.prepared import PreparedBox
from codeexec.adapters.local_sandbox.recipes import Toolchain
from codeexec.adapters.local_sandbox.supervisor import Stage, StagePlan
from codeexec.adapters.local_sandbox.workspace import Workspace
from codeexec.domain.model import Limits, Stream

if TYPE_CHECKING:
    from codeexec.adapters.local_sandbox.bubblewrap import BubblewrapSandbox


class RunStages:
    """Makes each stage of one run. With the fast start, the run's boxes come prepared: the
    first with the run's work dir, the next (after a compile) on that same work dir."""

    def __init__(
        self,
        sandbox: BubblewrapSandbox,
        uid: int,
        run_name: str,
        files: tuple[str, ...],
        boxes: list[PreparedBox] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.uid = uid
        self.run_name = run_name
        self.files = files
        self._boxes = boxes
        """Prepared boxes not yet used, in stage order; None for bubblewrap stages."""

    def stage(
        self,
        *,
        name: str,
        toolchain: Toolchain,
        argv: list[str],
        limits: Limits,
        stdin: bytes,
        workspace: Workspace,
        on_output: Callable[[Stream, bytes], None],
    ) -> Stage:
        sb = self.sandbox
        tree = sb._cgroup_tree()
        launch: Launch
        if self._boxes is not None and sb._fast is not None:
            program = sb._fast.program(
                stage=name, toolchain=toolchain, argv=argv, uid=self.uid, files=self.files
            )
            in_zygote = program["mode"] != "exec"
            if self._boxes:
                box = self._boxes.pop(0)
            else:
                box = sb._fast.make_for(workspace, toolchain.binds, prefault=in_zygote)
            sb._fast.used(box, in_zygote)
            launch = PreparedLaunch(box, program, stdin, limits)
        else:
            launch = self._bwrap(name, toolchain, argv, limits, stdin, workspace)
        plan = StagePlan(
            launch=launch,
            limits=limits,
            rlimits=rl.rlimits_for(
                limits,
                memory_in_cgroup=tree is not None,
                cpu_in_cgroup=tree is not None and tree.counts_cpu,
                own_uid=sb._as_root,
            ),
        )
        return Stage(plan, on_output)

    def _bwrap(
        self,
        name: str,
        toolchain: Toolchain,
        argv: list[str],
        limits: Limits,
        stdin: bytes,
        workspace: Workspace,
    ) -> Launch:
        sb = self.sandbox
        tree = sb._cgroup_tree()
        if tree is not None:
            tree.keep_warm()

        def make_cgroup() -> RunCgroup:
            assert tree is not None
            return tree.create(f"{self.run_name}.{name}", limits)

        bwrap, setpriv = sb._bwrap or "bwrap", sb._setpriv
        ops = box_ops(
            etc=sb._work.etc(),
            dev=sb._work.dev(),
            scratch_bytes=sb._scratch_bytes,
            binds=toolchain.binds,
            workspace=workspace.path,
        )

        def argv_for(fds: BoxFiles) -> list[str]:
            return bwrap_argv(
                bwrap=bwrap, setpriv=setpriv, uid=self.uid, ops=ops, fds=fds, command=argv
            )

        data = dict(identity_files(self.uid))
        if sb._seccomp is not None:
            data["seccomp"] = sb._seccomp
        return BwrapLaunch(
            argv_for,
            environment(toolchain),
            stdin,
            data,
            make_cgroup if tree is not None else None,
        )

    def release(self, stage: Stage) -> None:
        if stage.cgroup is not None:
            stage.cgroup.remove()
        launch = stage.plan.launch
        if isinstance(launch, PreparedLaunch):
            if launch.box.cgroup is not None and launch.box.cgroup is not stage.cgroup:
                launch.box.cgroup.remove()
            if self.sandbox._fast is not None:
                self.sandbox._fast.done(launch.box.binds)

    async def finish(self) -> None:
        """Destroy the boxes prepared for stages that never ran (a failed compile)."""
        boxes, self._boxes = self._boxes or [], []
        for box in boxes:
            await box.destroy()
            if self.sandbox._fast is not None:
                self.sandbox._fast.done()
        await asyncio.sleep(0)
