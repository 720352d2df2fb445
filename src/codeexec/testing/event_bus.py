"""The EventBus contract: what every bus adapter must do, written once for all of them.

An adapter's test module subclasses `EventBusContract` and provides the `new_bus` fixture
(an async factory of fresh buses sharing one broker where the adapter has one; the fixture
closes them). Waits are bounded by `DEADLINE_S`, generous for a broker's group rebalances."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest

from codeexec.domain.routing import TopicSpec
from codeexec.ports.bus import (
    H_POSITION,
    H_REPLAY,
    H_TYPE,
    EventBus,
    Message,
    Subscription,
    TopicPartition,
    UnknownTopic,
)

NewBus = Callable[[], Awaitable[EventBus]]
DEADLINE_S = 30.0


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def declared(new_bus: NewBus, partitions: int = 4) -> tuple[EventBus, str]:
    bus = await new_bus()
    topic = unique("t")
    await bus.declare([TopicSpec(topic, partitions, 60_000)])
    return bus, topic


def message(topic: str, key: str, n: int) -> Message:
    return Message(topic, key, str(n).encode(), {H_POSITION: str(n)})


async def drain(sub: Subscription, expected: int, timeout: float = DEADLINE_S) -> list[Message]:
    got: list[Message] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < expected and asyncio.get_running_loop().time() < deadline:
        got += await sub.poll(1000, timeout=0.2)
    return got


async def commit_all(sub: Subscription, got: list[Message]) -> None:
    offsets: dict[TopicPartition, int] = {}
    for m in got:
        tp = TopicPartition(m.topic, m.partition)
        offsets[tp] = max(offsets.get(tp, 0), m.offset + 1)
    if offsets:
        await sub.commit(offsets)


class EventBusContract:
    async def test_topics_must_be_declared_and_are_never_created_by_use(
        self, new_bus: NewBus
    ) -> None:
        bus = await new_bus()
        nowhere = unique("nowhere")
        with pytest.raises(UnknownTopic):
            await bus.publish([message(nowhere, "k", 1)])
        with pytest.raises(UnknownTopic):
            await bus.subscribe(unique("g"), [nowhere])
        with pytest.raises(UnknownTopic):  # still missing: neither call created it
            await (await new_bus()).subscribe(unique("g"), [nowhere])

    async def test_declaring_again_keeps_the_topic_and_its_messages(self, new_bus: NewBus) -> None:
        bus, topic = await declared(new_bus)
        await bus.publish([message(topic, "a", 1)])
        await bus.declare([TopicSpec(topic, 4, 60_000)])
        sub = await bus.subscribe(unique("g"), [topic])
        assert [m.value for m in await drain(sub, 1)] == [b"1"]

    async def test_one_key_keeps_its_order_on_one_partition(self, new_bus: NewBus) -> None:
        bus, topic = await declared(new_bus)
        await bus.publish([message(topic, "a", n) for n in range(1, 20)])
        sub = await bus.subscribe(unique("g"), [topic])
        got = await drain(sub, 19)
        assert [m.value for m in got] == [str(n).encode() for n in range(1, 20)]
        assert len({m.partition for m in got}) == 1
        assert [m.headers[H_POSITION] for m in got] == [str(n) for n in range(1, 20)]

    async def test_interleaved_keys_each_keep_their_order(self, new_bus: NewBus) -> None:
        bus, topic = await declared(new_bus)
        keys = [f"execution-{k}" for k in range(6)]
        await bus.publish([message(topic, keys[n % 6], n) for n in range(120)])
        got = await drain(await bus.subscribe(unique("g"), [topic]), 120)
        assert len(got) == 120
        for key in keys:
            mine = [int(m.value) for m in got if m.key == key]
            assert mine == sorted(mine) and len(mine) == 20
            assert len({m.partition for m in got if m.key == key}) == 1

    async def test_keys_headers_and_bytes_arrive_unchanged(self, new_bus: NewBus) -> None:
        bus, topic = await declared(new_bus)
        value = bytes(range(256)) * 400  # every byte value, 100 kB
        headers = {H_TYPE: "ExecutionOutput", H_POSITION: "42", H_REPLAY: "s-1", "x-note": "é ✓"}
        await bus.publish([Message(topic, "exé-1", value, headers), Message(topic, "exé-1", b"")])
        got = await drain(await bus.subscribe(unique("g"), [topic]), 2)
        assert [(m.topic, m.key, m.value) for m in got] == [
            (topic, "exé-1", value),
            (topic, "exé-1", b""),
        ]
        assert dict(got[0].headers) == headers and dict(got[1].headers) == {}
        assert got[0].position == 42
        assert 0 <= got[0].partition < 4 and got[1].offset == got[0].offset + 1

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

    async def test_a_member_leaving_without_commits_hands_everything_over(
        self, new_bus: NewBus
    ) -> None:
        bus, topic = await declared(new_bus)
        group = unique("g")
        first = await bus.subscribe(group, [topic])
        await bus.publish([message(topic, f"k{n}", n) for n in range(12)])
        assert len(await drain(first, 12)) == 12
        await first.close()
        second = await bus.subscribe(group, [topic])
        again = await drain(second, 12)
        assert sorted(int(m.value) for m in again) == list(range(12))

    async def test_two_members_split_the_partitions_and_each_message_goes_to_one(
        self, new_bus: NewBus
    ) -> None:
        """Competing consumers: both members get work, and as each commits what it got,
        no message is handled by both."""
        bus, topic = await declared(new_bus)
        group = unique("worker")
        members = [await bus.subscribe(group, [topic]), await bus.subscribe(group, [topic])]
        seen: list[list[Message]] = [[], []]
        sent = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        # Publish in rounds until both members have work: a broker rebalances in the meantime.
        while not all(seen) and loop.time() < deadline:
            await bus.publish([message(topic, f"k{sent + i}", sent + i) for i in range(8)])
            sent += 8
            await _poll_members(members, seen)
        while sum(map(len, seen)) < sent and loop.time() < deadline:
            await _poll_members(members, seen)
        assert all(seen), "both members of the group get partitions"
        values = sorted(int(m.value) for got in seen for m in got)
        assert values == list(range(sent)), "each message goes to exactly one member"

    async def test_lag_counts_what_each_group_has_not_committed(self, new_bus: NewBus) -> None:
        bus, topic = await declared(new_bus, partitions=2)
        group = unique("g")
        sub = await bus.subscribe(group, [topic])
        await bus.publish([message(topic, f"k{n}", n) for n in range(10)])
        got = await drain(sub, 10)
        assert (await bus.lag())[group] == 10
        await commit_all(sub, got[:4])  # a prefix of each partition's messages
        assert (await bus.lag())[group] == 6
        await commit_all(sub, got)
        assert (await bus.lag())[group] == 0

    async def test_a_waiting_poll_wakes_on_publish(self, new_bus: NewBus) -> None:
        bus, topic = await declared(new_bus)
        sub = await bus.subscribe(unique("g"), [topic])
        await sub.poll(10, timeout=0.1)
        waiter = asyncio.create_task(sub.poll(10, timeout=DEADLINE_S))
        await asyncio.sleep(0.05)
        await bus.publish([message(topic, "a", 1)])
        assert len(await asyncio.wait_for(waiter, DEADLINE_S)) == 1


async def _poll_members(members: list[Subscription], seen: list[list[Message]]) -> None:
    for sub, got in zip(members, seen, strict=True):
        batch = await sub.poll(100, timeout=0.2)
        await commit_all(sub, batch)
        got += batch
