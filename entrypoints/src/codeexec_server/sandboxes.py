"""Choose the sandbox by name (CODEEXEC_SANDBOX=local|fake), importing only the one chosen."""

from __future__ import annotations

from codeexec.ports.sandbox import Sandbox


def make_sandbox(kind: str) -> Sandbox:
    if kind == "fake":
        from codeexec.adapters.fake_sandbox import FakeSandbox

        return FakeSandbox()
    if kind != "local":
        raise ValueError(f"unknown sandbox {kind!r}; use local or fake")
    from codeexec.adapters.local_sandbox import BubblewrapSandbox

    sandbox: Sandbox = BubblewrapSandbox()
    return sandbox
