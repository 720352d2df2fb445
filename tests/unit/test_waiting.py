"""A waiter answers once the run's end is recorded, whether or not the listing shows it yet."""

from __future__ import annotations

import asyncio

import pytest

from codeexec import Codeexec, Settings
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.commands import CommandService
from codeexec.runtime import ALL_ROLES
from tests.unit.factories import roomy, script


async def test_a_waiter_told_of_a_recorded_end_answers_before_the_listing_shows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No projector runs here, so the read model never shows the end; and no silence ever
    sends the waiter to the store. Only the wake-up of the recorded end can answer it."""
    monkeypatch.setattr(CommandService, "silence_s", 3600.0, raising=False)
    roles = ALL_ROLES - {"projections"}
    settings = Settings(coordinator=roomy(), roles=roles, live_feed=False)
    async with Codeexec(settings, sandbox=FakeSandbox()) as cx:
        view = await cx.submit("alice", script("out a\nerr b\nexit 2"))
        done = await asyncio.wait_for(cx.wait(view.id), 30)
        assert (done.status, done.exit_code) == ("runtime_error", 2)
        assert (done.stdout, done.stderr) == (b"a\n", b"b\n")


async def test_a_waiter_woken_by_other_events_does_not_read_the_store_for_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Events that do not end the run (queued, started, output) never send the waiter to
    the store: it folds the store's events once, for the end."""
    monkeypatch.setattr(CommandService, "silence_s", 3600.0, raising=False)
    roles = ALL_ROLES - {"projections"}
    settings = Settings(coordinator=roomy(), roles=roles, live_feed=False)
    async with Codeexec(settings, sandbox=FakeSandbox()) as cx:
        folds = 0
        fold = CommandService.fold_from_store

        async def counted(self: CommandService, *args: object, **kw: object) -> object:
            nonlocal folds
            folds += 1
            return await fold(self, *args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(CommandService, "fold_from_store", counted)
        view = await cx.submit("alice", script("out a\nsleep 0.05\nout b"))
        done = await asyncio.wait_for(cx.wait(view.id), 30)
        assert done.stdout == b"a\nb\n"
        assert folds == 1
