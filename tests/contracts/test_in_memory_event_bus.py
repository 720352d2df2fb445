"""InMemoryEventBus passes the shipped EventBus contract (codeexec.testing.event_bus)."""

from __future__ import annotations

import pytest

from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.ports.bus import EventBus
from codeexec.testing.event_bus import EventBusContract, NewBus


class TestInMemoryEventBus(EventBusContract):
    @pytest.fixture
    def new_bus(self) -> NewBus:
        async def make() -> EventBus:
            return InMemoryEventBus()

        return make
