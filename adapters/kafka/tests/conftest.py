"""A real Kafka-protocol broker (tansu) for the adapter's tests, started once per session on a
free loopback port, and buses on it that every test closes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from codeexec.ports.bus import EventBus
from codeexec_kafka import AioKafkaEventBus, KafkaSettings
from codeexec_kafka.tansu import TansuBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    log = Path(tmp_path_factory.mktemp("tansu")) / "tansu.log"
    with TansuBroker(log=log) as running:
        yield running


@pytest.fixture
def kafka_settings(broker: TansuBroker) -> KafkaSettings:
    # Members notice a rebalance quickly; 6 s is the least session timeout Kafka accepts by
    # default (tansu completes a join after half of it).
    return KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        session_timeout_ms=6000,
        heartbeat_interval_ms=300,
        revoke_grace_s=5.0,
    )


@pytest.fixture
async def kafka_buses(kafka_settings: KafkaSettings) -> AsyncIterator[list[AioKafkaEventBus]]:
    buses: list[AioKafkaEventBus] = []
    yield buses
    for bus in buses:
        await bus.close()


@pytest.fixture
def new_kafka_bus(kafka_settings: KafkaSettings, kafka_buses: list[AioKafkaEventBus]):  # type: ignore[no-untyped-def]
    async def make() -> AioKafkaEventBus:
        bus = AioKafkaEventBus(kafka_settings)
        kafka_buses.append(bus)
        return bus

    return make


@pytest.fixture
def new_bus(new_kafka_bus):  # type: ignore[no-untyped-def]
    async def make() -> EventBus:
        bus: EventBus = await new_kafka_bus()
        return bus

    return make
