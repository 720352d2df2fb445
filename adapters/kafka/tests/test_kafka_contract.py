"""AioKafkaEventBus passes the shipped EventBus contract against a real broker."""

from __future__ import annotations

from codeexec.testing.bus_tail import EventBusTailContract
from codeexec.testing.event_bus import EventBusContract


class TestAioKafkaEventBus(EventBusContract):
    """`new_bus` (conftest) makes buses on the session's tansu broker."""


class TestAioKafkaEventBusTail(EventBusTailContract):
    """`tail()` on a real broker: from the end, every partition, outside any group."""
