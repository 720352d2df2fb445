"""Without bubblewrap the sandbox refuses to run code and says how to install it."""

from __future__ import annotations

import pytest
from boxkit import spec

from codeexec.adapters.local_sandbox import BubblewrapSandbox
from codeexec.ports.sandbox import SandboxUnavailable

pytestmark = pytest.mark.integration


async def test_missing_bubblewrap_refuses_with_the_install_hint() -> None:
    box = BubblewrapSandbox(bwrap_path="/nonexistent/bin/bwrap")
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        await box.start("refused", spec("python", "print('must not run')"))
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        await box.prepare()
    # Listing languages only looks at the host's toolchains: an API process on a host
    # without bubblewrap lists them and runs nothing.
    assert [lang.name for lang in await box.languages()]
    assert box.enforced_limits() == {}
    assert await box.stop("refused") is False
    await box.close()
