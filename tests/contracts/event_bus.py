"""The EventBus contract: what every bus adapter must do, written once for all of them.

An adapter's test module subclasses `EventBusContract` and provides the `new_bus` fixture
(an async factory of fresh, empty buses sharing one broker where the adapter has one)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest

from codeexec.domain.routing import TopicSpec
from codeexec.ports.bus import H_POSITION, EventBus, Message, TopicPartition, UnknownTopic

NewBus = Callable[[], Awaitable[EventBus]]


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def declared(new_bus: NewBus, partitions: int = 4) -> tuple[EventBus, str]:
    bus = await new_bus()
    topic = unique("t")
    await bus.declare([TopicSpec(topic, partitions, 60_000)])
    return bus, topic


def message(topic: str, key: str, n: int) -> Message:
    return Message(topic, key, str(n).encode(), {H_POSITION: str(n)})


async def drain(sub: object, expected: int, timeout: float = 10.0) -> list[Message]:
    got: list[Message] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < expected and asyncio.get_running_loop().time() < deadline:
        got += await sub.poll(1000, timeout=0.2)  # type: ignore[attr-defined]
    return got


class EventBusContract:
    async def test_topics_must_be_declared(self, new_bus: NewBus) -> None:
        bus = await new_bus()
        with pytest.raises(UnknownTopic):
            await bus.publish([message(unique("nowhere"), "k", 1)])

    async def test_one_key_keeps_its_order_on_one_partition(self, new_bus: NewBus) -> None:
        bus, topic = await declared(new_bus)
        await bus.publish([message(topic, "a", n) for n in range(1, 20)])
        sub = await bus.subscribe(unique("g"), [topic])
        got = await drain(sub, 19)
        assert [m.value for m in got] == [str(n).encode() for n in range(1, 20)]
        assert len({m.partition for m in got}) == 1
        assert [m.headers[H_POSITION] for m in got] == [str(n) for n in range(1, 20)]

    async def test_every_group_gets_every_message(self, new_bus: NewBus) -> None:
        bus, topic = await declared(new_bus)
        first = await bus.subscribe(unique("g"), [topic])
        second = await bus.subscribe(unique("h"), [topic])
        await bus.publish([message(topic, f"k{n}", n) for n in range(30)])
        assert len(await drain(first, 30)) == 30
        assert len(await drain(second, 30)) == 30

    async def test_what_a_member_did_not_commit_is_delivered_again(self, new_bus: NewBus) -> None:
        bus, topic = await declared(new_bus, partitions=1)
        group = unique("g")
        first = await bus.subscribe(group, [topic])
        await bus.publish([message(topic, "a", n) for n in (1, 2, 3)])
        got = await drain(first, 3)
        await first.commit({TopicPartition(topic, got[0].partition): got[0].offset + 1})
        await first.close()
        second = await bus.subscribe(group, [topic])
        assert [m.value for m in await drain(second, 2)] == [b"2", b"3"]

    async def test_a_waiting_poll_wakes_on_publish(self, new_bus: NewBus) -> None:
        bus, topic = await declared(new_bus)
        sub = await bus.subscribe(unique("g"), [topic])
        await sub.poll(10, timeout=0.1)
        waiter = asyncio.create_task(sub.poll(10, timeout=5))
        await asyncio.sleep(0.05)
        await bus.publish([message(topic, "a", 1)])
        assert len(await asyncio.wait_for(waiter, 5)) == 1
