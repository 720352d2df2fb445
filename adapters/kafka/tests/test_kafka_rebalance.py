"""Rebalancing on a real broker: work in flight on a revoked partition is finished (committed
before the partition moves) or, past the grace, abandoned to the new owner; a late commit
for a partition the member lost is never applied."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from aiokafka.structs import TopicPartition as KafkaTopicPartition

from codeexec.domain.routing import TopicSpec
from codeexec.ports.bus import Message, Subscription
from codeexec.testing.event_bus import DEADLINE_S, commit_all, message, unique
from codeexec_kafka import AioKafkaEventBus, AioKafkaSubscription, KafkaSettings

NewKafkaBus = Callable[[], Awaitable[AioKafkaEventBus]]
N = 40


async def topic_with_messages(bus: AioKafkaEventBus) -> str:
    topic = unique("t")
    await bus.declare([TopicSpec(topic, 4, 60_000)])
    await bus.publish([message(topic, f"k{n}", n) for n in range(N)])
    return topic


async def drain_until(subs: list[Subscription], seen: list[Message], total: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while len(seen) < total and loop.time() < deadline:
        for sub in subs:
            batch = await sub.poll(100, timeout=0.2)
            await commit_all(sub, batch)
            seen += batch


async def rebalancing(sub: AioKafkaSubscription) -> None:
    """Until the member has been told to give its partitions back."""
    for _ in range(int(DEADLINE_S / 0.05)):
        if sub.rebalancing:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the group did not rebalance")


async def test_a_rebalance_waits_for_the_batch_in_flight_to_be_committed(
    new_kafka_bus: NewKafkaBus,
) -> None:
    bus = await new_kafka_bus()
    topic = await topic_with_messages(bus)
    group = unique("worker")
    first = await bus.subscribe(group, [topic])
    held: list[Message] = []
    while len(held) < N:
        held += await first.poll(N, timeout=0.2)
    second = await bus.subscribe(group, [topic])  # the group rebalances
    await rebalancing(first)
    await asyncio.sleep(0.5)  # the rebalance is held while the batch is in flight
    await commit_all(first, held)  # accepted: the partitions were not yet handed over
    later: list[Message] = []
    await bus.publish([message(topic, f"k{n}", n) for n in range(N, 2 * N)])
    await drain_until([first, second], later, N)
    assert sorted(int(m.value) for m in later) == list(range(N, 2 * N))


async def test_past_the_grace_work_in_flight_is_abandoned_to_the_new_owner(
    kafka_settings: KafkaSettings, kafka_buses: list[AioKafkaEventBus]
) -> None:
    bus = AioKafkaEventBus(dataclasses.replace(kafka_settings, revoke_grace_s=0.2))
    kafka_buses.append(bus)
    topic = await topic_with_messages(bus)
    group = unique("worker")
    first = await bus.subscribe(group, [topic])
    held: list[Message] = []
    while len(held) < N:
        held += await first.poll(N, timeout=0.2)
    second = await bus.subscribe(group, [topic])
    await rebalancing(first)
    again: list[Message] = []
    while not second.consumer.assignment():  # the grace ran out: the group moved on
        again += await second.poll(N, timeout=0.1)
    await commit_all(first, held)  # too late: not applied to partitions it lost
    tps = [KafkaTopicPartition(topic, p) for p in range(4)]
    assert [await second.consumer.committed(tp) for tp in tps] == [None] * 4
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while len(again) < N and loop.time() < deadline:
        for sub in (first, second):
            again += await sub.poll(N, timeout=0.2)
    assert sorted(int(m.value) for m in again) == list(range(N))


async def test_closing_a_member_ends_a_wait_for_its_batch(
    kafka_settings: KafkaSettings, kafka_buses: list[AioKafkaEventBus]
) -> None:
    """A graceful shutdown does not sit out the grace of a rebalance that waits for it."""
    bus = AioKafkaEventBus(dataclasses.replace(kafka_settings, revoke_grace_s=3600))
    kafka_buses.append(bus)
    topic = await topic_with_messages(bus)
    group = unique("worker")
    first = await bus.subscribe(group, [topic])
    while not await first.poll(N, timeout=0.2):
        pass
    second = await bus.subscribe(group, [topic])
    await rebalancing(first)
    await asyncio.wait_for(first.close(), DEADLINE_S)
    got: list[Message] = []
    await drain_until([second], got, N)
    assert sorted(int(m.value) for m in got) == list(range(N))
