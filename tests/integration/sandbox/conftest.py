"""Fixtures for the bubblewrap sandbox tests: a real sandbox, a runner, and host-side probes."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from boxkit import UID_COUNT, box_processes, processes_named

from codeexec.adapters.local_sandbox import BubblewrapSandbox


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("bwrap") is None:
        skip = pytest.mark.skip(reason="bubblewrap missing: apt-get install bubblewrap")
    elif os.geteuid() != 0:
        skip = pytest.mark.skip(reason="the sandbox tests run as root (as CI does)")
    else:
        return
    for item in items:
        path = str(item.fspath)
        if "integration/sandbox" in path and not path.endswith("test_sandbox_unavailable.py"):
            item.add_marker(skip)


@pytest.fixture
def uid_base() -> int:
    # A uid range of our own, so concurrent test runs never see each other's processes.
    return 2_000_000 + (os.getpid() % 10_000) * UID_COUNT


@pytest.fixture(params=[True, False], ids=["zygote", "bwrap"])
def fast_start(request: pytest.FixtureRequest) -> bool:
    """Both ways of starting a box: forked from the zygote (the default as root), and
    bubblewrap per stage (the fallback); every hostile test holds for both."""
    return bool(request.param)


@pytest.fixture
async def sandbox(uid_base: int, fast_start: bool) -> AsyncIterator[BubblewrapSandbox]:
    box = BubblewrapSandbox(uid_base=uid_base, uid_count=UID_COUNT, fast_start=fast_start)
    yield box
    await box.close()
    assert box_processes(uid_base) == [], "a process of a run outlived the sandbox"


@pytest.fixture
def marker() -> Iterator[str]:
    """A name only this test's processes carry, to find survivors in the host's ps."""
    name = f"codeexec-marker-{uuid.uuid4().hex[:12]}"
    yield name
    assert processes_named(name) == [], f"processes named {name} survived"
