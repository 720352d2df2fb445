"""AioKafkaEventBus passes the shipped EventBus contract against a real broker."""

from __future__ import annotations

import dataclasses

import pytest

from codeexec.testing.bus_tail import EventBusTailContract
from codeexec.testing.event_bus import EventBusContract
from codeexec_kafka import KafkaSettings


@pytest.fixture
def kafka_settings(kafka_settings: KafkaSettings) -> KafkaSettings:
    # The contract reads the lag right after each commit; the cache (tested on its own in
    # test_kafka_lag.py) would answer with the lag before it.
    return dataclasses.replace(kafka_settings, lag_cache_s=0)


class TestAioKafkaEventBus(EventBusContract):
    """`new_bus` (conftest) makes buses on the session's tansu broker."""


class TestAioKafkaEventBusTail(EventBusTailContract):
    """`tail()` on a real broker: from the end, every partition, outside any group."""
