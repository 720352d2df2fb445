"""The EventBus.tail contract: following topics from their end, outside consumer groups.

A test module subclasses `EventBusTailContract` and provides the `new_bus` fixture, as for
the event-bus contract (an async factory of fresh buses sharing one broker)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest

from codeexec.domain.routing import TopicSpec
from codeexec.ports.bus import EventBus, Message, Subscription, TopicPartition, UnknownTopic

NewBus = Callable[[], Awaitable[EventBus]]


async def _declared(new_bus: NewBus, partitions: int = 4) -> tuple[EventBus, str]:
    bus = await new_bus()
    topic = f"tail-{uuid.uuid4().hex[:8]}"
    await bus.declare([TopicSpec(topic, partitions, 60_000)])
    return bus, topic


def _messages(topic: str, start: int, count: int) -> list[Message]:
    return [Message(topic, f"k{n}", str(n).encode()) for n in range(start, start + count)]


async def _drain(sub: Subscription, expected: int, timeout: float = 10.0) -> list[Message]:
    got: list[Message] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < expected and asyncio.get_running_loop().time() < deadline:
        got += await sub.poll(1000, timeout=0.2)
    return got


class EventBusTailContract:
    async def test_a_tail_sees_what_is_published_after_it_from_every_partition(
        self, new_bus: NewBus
    ) -> None:
        bus, topic = await _declared(new_bus)
        await bus.publish(_messages(topic, 0, 10))
        tail = await bus.tail([topic])
        await bus.publish(_messages(topic, 10, 40))
        got = await _drain(tail, 40)
        assert sorted(int(m.value) for m in got) == list(range(10, 50))
        assert len({m.partition for m in got}) == 4
        assert await tail.poll(100, timeout=0.2) == []
        await tail.close()

    async def test_every_tail_gets_every_message_and_groups_are_untouched(
        self, new_bus: NewBus
    ) -> None:
        bus, topic = await _declared(new_bus)
        group = f"g-{uuid.uuid4().hex[:8]}"
        member = await bus.subscribe(group, [topic])
        first, second = await bus.tail([topic]), await bus.tail([topic])
        await bus.publish(_messages(topic, 0, 20))
        assert len(await _drain(first, 20)) == 20
        assert len(await _drain(second, 20)) == 20
        await first.commit({TopicPartition(topic, 0): 10**6})  # a tail commits nothing
        assert len(await _drain(member, 20)) == 20
        for sub in (first, second, member):
            await sub.close()

    async def test_a_waiting_tail_wakes_on_publish(self, new_bus: NewBus) -> None:
        bus, topic = await _declared(new_bus)
        tail = await bus.tail([topic])
        await tail.poll(10, timeout=0.1)
        waiter = asyncio.create_task(tail.poll(10, timeout=5))
        await asyncio.sleep(0.05)
        await bus.publish(_messages(topic, 0, 1))
        assert [m.value for m in await asyncio.wait_for(waiter, 5)] == [b"0"]
        await tail.close()

    async def test_only_declared_topics_can_be_tailed(self, new_bus: NewBus) -> None:
        bus = await new_bus()
        with pytest.raises(UnknownTopic):
            await bus.tail([f"nowhere-{uuid.uuid4().hex[:8]}"])
