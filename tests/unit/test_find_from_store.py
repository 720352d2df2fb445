"""An accepted execution is never answered as missing: where the read model does not show
it yet (projections behind, or an API process that restarted), the store answers."""

from __future__ import annotations

import pytest

from codeexec import Codeexec, Settings
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.runtime import NotFound
from tests.unit.factories import roomy, script


async def test_an_api_process_finds_what_the_read_model_does_not_show_yet() -> None:
    settings = Settings(coordinator=roomy(), roles=frozenset())  # an API process: no projections
    async with Codeexec(settings, sandbox=FakeSandbox()) as cx:
        view = await cx.submit("alice", script("out a"))
        cx._commands()._own.clear()  # as after a restart: only the store knows it
        with pytest.raises(NotFound):
            cx.get(view.id)
        found = await cx.find(view.id, "alice")
        assert found.id == view.id and found.user_id == "alice"
        with pytest.raises(NotFound):
            await cx.find(view.id, "bob")  # another user's is still missing to them
