"""The in-memory bus follows topics from their end as the tail contract says."""

from __future__ import annotations

import pytest

from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.ports.bus import EventBus
from codeexec.testing.bus_tail import EventBusTailContract, NewBus


class TestInMemoryBusTail(EventBusTailContract):
    @pytest.fixture
    def new_bus(self) -> NewBus:
        async def new() -> EventBus:
            return InMemoryEventBus()

        return new
