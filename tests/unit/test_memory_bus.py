"""InMemoryEventBus: what only the embedded bus does (settling, retention, simulated crashes);
the bus contract it shares with every adapter runs in tests/contracts."""

from __future__ import annotations

import asyncio

import pytest

from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.domain.routing import TopicSpec
from codeexec.ports.bus import H_POSITION, Message, TopicPartition, UnknownTopic

TOPIC = TopicSpec("t", 4, 1000)


def msg(key: str, n: int) -> Message:
    return Message("t", key, str(n).encode(), {H_POSITION: str(n)})


async def bus() -> InMemoryEventBus:
    b = InMemoryEventBus()
    await b.declare([TOPIC])
    return b


async def test_topics_must_be_declared() -> None:
    b = InMemoryEventBus()
    with pytest.raises(UnknownTopic):
        await b.publish([msg("k", 1)])
    with pytest.raises(UnknownTopic):
        await b.subscribe("g", ["t"])


async def test_group_members_share_partitions_and_groups_each_get_everything() -> None:
    b = await bus()
    one, two = await b.subscribe("g", ["t"]), await b.subscribe("g", ["t"])
    other = await b.subscribe("h", ["t"])
    await b.publish([msg(f"k{n}", n) for n in range(40)])
    a, c = await one.poll(100, 0), await two.poll(100, 0)
    assert len(a) + len(c) == 40 and a and c
    assert not {(m.partition) for m in a} & {(m.partition) for m in c}
    assert len(await other.poll(100, 0)) == 40


async def test_settled_position_is_the_lowest_uncommitted_store_position() -> None:
    b = await bus()
    sub = await b.subscribe("g", ["t"])
    await b.publish([msg("a", 5), msg("a", 6)])
    assert b.settled_position() == 5
    got = await sub.poll(10, 0)
    await sub.commit({TopicPartition("t", got[0].partition): got[0].offset + 1})
    assert b.settled_position() == 6
    await sub.commit({TopicPartition("t", got[1].partition): got[1].offset + 1})
    assert b.settled_position() is None


async def test_a_topic_nobody_consumes_keeps_messages_only_for_its_retention() -> None:
    import asyncio

    b = InMemoryEventBus()
    await b.declare([TopicSpec("scratch", 1, retention_ms=50)])
    await b.publish([Message("scratch", "k", b"old")])
    await asyncio.sleep(0.08)
    await b.publish([Message("scratch", "k", b"new")])
    reader = await b.subscribe("late", ["scratch"])
    assert [m.value for m in await reader.poll(10, 0)] == [b"new"]


async def test_replayed_messages_never_hold_back_the_settled_position() -> None:
    from codeexec.ports.bus import H_REPLAY

    b = await bus()
    await b.declare([TopicSpec("scratch", 1, 1000)])
    await b.publish([Message("scratch", "a", b"x", {H_POSITION: "1", H_REPLAY: "s"})])
    assert b.settled_position() is None
    await b.publish([msg("a", 7)])
    assert b.settled_position() == 7  # relayed, and nobody consumed it yet


async def test_what_every_group_committed_is_dropped_and_nothing_a_group_still_needs() -> None:
    b = await bus()
    fast, slow = await b.subscribe("fast", ["t"]), await b.subscribe("slow", ["t"])
    tp = TopicPartition("t", 0)
    await b.publish([Message("t", "k", str(n).encode(), {}, 0) for n in range(3000)])
    await fast.commit({tp: 3000})
    await slow.commit({tp: 1000})  # within a step of the head: nothing goes yet
    assert b._topics["t"][0].base == 0
    await slow.commit({tp: 2000})
    assert b._topics["t"][0].base == 2000  # what both read, and not one message more
    await fast.close()
    again = await b.subscribe("fast2", ["t"])  # a new group reads what is still kept
    assert (await again.poll(5000, 0))[0].offset == 2000
    assert [m.offset for m in await slow.poll(5000, 0)][:1] == [2000]


async def test_a_poll_cancelled_as_a_message_wakes_it_is_cancelled() -> None:
    """A role stopping cancels its poll; a message arriving in the same turn must not
    swallow the cancel (the role would poll on until its stop timed out)."""
    b = await bus()
    tail = await b.tail(["t"])
    poll = asyncio.create_task(tail.poll(100, timeout=30))
    await asyncio.sleep(0)  # the poll waits for a message
    await b.publish([msg("k", 1)])
    poll.cancel()
    with pytest.raises(asyncio.CancelledError):
        await poll
