"""The dashboard's queue history in a deployment of several processes: an API-only process
samples the shared read model and says so; a process with the coordinator samples its queue;
both see the same running work."""

from __future__ import annotations

from pathlib import Path

import pytest
from codeexec_server.queue_history import QueueHistory

from tests.integration.roles.test_api_only_process import Models, pair, shared_sqlite
from tests.unit.factories import eventually, script

pytestmark = pytest.mark.integration
__all__ = ["shared_sqlite"]  # the fixture, used by name


async def test_each_process_samples_the_same_running_work_from_its_own_source(
    tmp_path: Path, shared_sqlite: Models
) -> None:
    async with pair(tmp_path, "sqlite", shared_sqlite) as (api, roles):
        api_history = QueueHistory(interval_s=0.05, window_s=1)
        roles_history = QueueHistory(interval_s=0.05, window_s=1)
        api_history.start(api)
        roles_history.start(roles)
        try:
            assert (api_history.source, roles_history.source) == ("read_model", "coordinator")
            hanging = await api.submit("alice", script("out start\nhang"))

            def both_see_it_running() -> bool:
                latest = [h.samples[-1] for h in (api_history, roles_history) if h.samples]
                return len(latest) == 2 and all(s.running == 1 for s in latest)

            await eventually(both_see_it_running, 10)
            await api.cancel(hanging.id, "alice")
            await eventually(lambda: api_history.samples[-1].running == 0, 10)
            # A ring: a second's worth of samples at most, however long it runs.
            assert len(api_history.samples) <= api_history.capacity == 20
        finally:
            await api_history.stop()
            await roles_history.stop()
