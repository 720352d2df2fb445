"""Choose the sandbox by name (CODEEXEC_SANDBOX=local|fake), importing only the one chosen.

The local sandbox's start-up knobs: CODEEXEC_SANDBOX_POOL_SIZE (boxes prepared ahead at most,
default 8; 0: made on demand) and CODEEXEC_SANDBOX_FAST_START=0 (bubblewrap per stage)."""

from __future__ import annotations

import os

from codeexec.ports.sandbox import Sandbox


def make_sandbox(kind: str) -> Sandbox:
    if kind == "fake":
        from codeexec.adapters.fake_sandbox import FakeSandbox

        return FakeSandbox()
    if kind != "local":
        raise ValueError(f"unknown sandbox {kind!r}; use local or fake")
    from codeexec.adapters.local_sandbox import BubblewrapSandbox

    sandbox: Sandbox = BubblewrapSandbox(
        pool_size=int(os.environ.get("CODEEXEC_SANDBOX_POOL_SIZE", "8")),
        fast_start=os.environ.get("CODEEXEC_SANDBOX_FAST_START", "1") != "0",
    )
    return sandbox
