"""Topics on a real broker: declared with the spec's partitions and retention, existing ones
accepted as they are (with a warning when they differ), none created by publishing or
subscribing, and every compression codec readable."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from codeexec.domain.routing import TOPICS, TopicSpec
from codeexec.ports.bus import UnknownTopic
from codeexec.testing.event_bus import drain, message, unique
from codeexec_kafka import AioKafkaEventBus, KafkaSettings
from codeexec_kafka.topics import existing_topics, retention_ms

NewKafkaBus = Callable[[], Awaitable[AioKafkaEventBus]]


@pytest.fixture
async def admin(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**kafka_settings.client_options())
    await client.start()
    yield client
    await client.close()


async def test_declare_creates_topics_with_the_specs_partitions_and_retention(
    new_kafka_bus: NewKafkaBus, admin: AIOKafkaAdminClient
) -> None:
    bus = await new_kafka_bus()
    specs = [
        TopicSpec(unique(name), spec.partitions, spec.retention_ms) for name, spec in TOPICS.items()
    ]
    await bus.declare(specs)
    topics = await existing_topics(admin)
    assert {s.name: topics[s.name] for s in specs} == {s.name: s.partitions for s in specs}
    retention = await retention_ms(admin, [s.name for s in specs])
    assert retention == {s.name: s.retention_ms for s in specs}


async def test_an_existing_topic_is_kept_as_it_is_with_a_warning(
    new_kafka_bus: NewKafkaBus, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique("t")
    await (await new_kafka_bus()).declare([TopicSpec(name, 2, 60_000)])
    other = await new_kafka_bus()  # another process, with another idea of the topic
    with caplog.at_level(logging.WARNING, "codeexec_kafka.topics"):
        await other.declare([TopicSpec(name, 8, 120_000)])
    assert "exists with 2 partitions, declared with 8" in caplog.text
    assert "keeps retention.ms=60000, declared with 120000" in caplog.text
    await other.publish([message(name, f"k{n}", n) for n in range(30)])
    got = await drain(await other.subscribe(unique("g"), [name]), 30)
    assert {m.partition for m in got} == {0, 1}


async def test_publishing_or_subscribing_to_an_unknown_topic_creates_nothing(
    new_kafka_bus: NewKafkaBus, admin: AIOKafkaAdminClient
) -> None:
    """Brokers that auto-create topics (Apache Kafka's default, tansu) do so on a metadata
    request naming a missing topic: the bus never sends one."""
    bus = await new_kafka_bus()
    await bus.declare([TopicSpec(unique("known"), 1, 60_000)])  # clients are connected
    nowhere = unique("nowhere")
    with pytest.raises(UnknownTopic):
        await bus.publish([message(nowhere, "k", 1)])
    with pytest.raises(UnknownTopic):
        await bus.subscribe(unique("g"), [nowhere])
    assert nowhere not in await admin.list_topics()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd", "none"])
async def test_every_compression_codec_round_trips(
    codec: str, kafka_settings: KafkaSettings, kafka_buses: list[AioKafkaEventBus]
) -> None:
    bus = AioKafkaEventBus(dataclasses.replace(kafka_settings, compression=codec))
    kafka_buses.append(bus)
    name = unique("t")
    await bus.declare([TopicSpec(name, 1, 60_000)])
    await bus.publish([message(name, "k", n) for n in range(50)])
    got = await drain(await bus.subscribe(unique("g"), [name]), 50)
    assert [int(m.value) for m in got] == list(range(50))


async def test_configured_partition_counts_apply_to_topics_the_bus_creates(
    kafka_settings: KafkaSettings,
    kafka_buses: list[AioKafkaEventBus],
    admin: AIOKafkaAdminClient,
) -> None:
    small, other = unique("t"), unique("t")
    settings = dataclasses.replace(kafka_settings, partitions=f"{small}=3")
    bus = AioKafkaEventBus(settings)
    kafka_buses.append(bus)
    await bus.declare([TopicSpec(small, 16, 60_000), TopicSpec(other, 2, 60_000)])
    topics = await existing_topics(admin)
    assert (topics[small], topics[other]) == (3, 2)
    # A name that is neither declared now nor one of codeexec's topics is a mistake.
    typo = AioKafkaEventBus(dataclasses.replace(kafka_settings, partitions="execution_event=4"))
    kafka_buses.append(typo)
    with pytest.raises(UnknownTopic, match="CODEEXEC_KAFKA_PARTITIONS"):
        await typo.declare([TopicSpec(unique("t"), 1, 60_000)])
