"""The bubblewrap sandbox passes the shipped sandbox contract (the Kubernetes sandbox runs the
same one), with boxes forked from the zygote and with bubblewrap per stage."""

from __future__ import annotations

import pytest

from codeexec.adapters.local_sandbox import BubblewrapSandbox
from codeexec.testing.sandbox import SandboxContract

pytestmark = pytest.mark.integration


@pytest.fixture
def contract_sandbox(sandbox: BubblewrapSandbox) -> BubblewrapSandbox:
    return sandbox


class TestBubblewrapSandboxContract(SandboxContract):
    pass
