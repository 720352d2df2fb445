"""A SQLite store locked by another connection: the runtime answers busy, loses nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from codeexec import Settings
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.runtime import Codeexec
from codeexec.service.store_thread import StoreBusy
from tests.unit.factories import roomy, script

pytestmark = pytest.mark.integration


async def test_a_locked_store_refuses_submissions_without_freezing_and_loses_nothing(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path, coordinator=roomy(), store_busy_timeout_s=0.5, timer_interval_s=0.02
    )
    async with Codeexec(settings, sandbox=FakeSandbox()) as cx:
        accepted = [(await cx.submit("alice", script("out x"))).id for _ in range(3)]
        # Still running while the store is locked: its output and result must wait, not vanish.
        running = await cx.submit("alice", script("out a\nsleep 0.3\nout b"))
        lock = sqlite3.connect(tmp_path / "events.sqlite3", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            refused = asyncio.ensure_future(cx.submit("alice", script("out refused")))
            turns = 0
            while not refused.done():  # the event loop keeps serving while the submit waits
                turns += 1
                await asyncio.sleep(0.01)
            assert turns > 1
            with pytest.raises(StoreBusy):
                await refused
            assert cx.get(accepted[0]).id == accepted[0]  # reads stay on the read model
        finally:
            lock.rollback()
            lock.close()
        after = await cx.submit("alice", script("out after"))
        for execution_id in [*accepted, running.id, after.id]:
            assert (await cx.wait(execution_id, timeout=30)).status == "succeeded"
        assert cx.get(running.id).stdout == b"a\nb\n"
        assert len(cx.list_all()) == 5  # the refused submission recorded nothing
        assert await cx.in_store(cx.dead_letters.backlog) == (0, "ok")  # busy is not a failure
