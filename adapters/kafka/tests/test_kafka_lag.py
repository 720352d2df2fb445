"""`lag()` on a bus with no members: every group of codeexec's topics that the broker knows,
read without joining (the members never rebalance), cached, and bounded in time."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from codeexec.domain.routing import TopicSpec
from codeexec.testing.event_bus import DEADLINE_S, commit_all, drain, message, unique
from codeexec_kafka import AioKafkaEventBus, KafkaSettings

MEMBER = Path(__file__).with_name("lag_member.py")


class Member:
    """A group member in another process (lag_member.py)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def ask(self, command: str) -> dict[str, object]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), DEADLINE_S)
        assert line, "the member process ended"
        answer: dict[str, object] = json.loads(line)
        return answer


@pytest.fixture
async def member_process(kafka_settings: KafkaSettings) -> AsyncIterator[list[Member]]:
    started: list[Member] = []
    yield started
    for member in started:
        if member.process.returncode is None:
            assert member.process.stdin
            member.process.stdin.write(b"quit\n")
            await asyncio.wait_for(member.process.wait(), DEADLINE_S)


async def start_member(
    started: list[Member], settings: KafkaSettings, topic: str, group: str
) -> Member:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(MEMBER),
        settings.bootstrap_servers,
        topic,
        group,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    started.append(Member(process))
    return started[-1]


@pytest.fixture
def uncached(kafka_settings: KafkaSettings) -> KafkaSettings:
    return dataclasses.replace(kafka_settings, lag_cache_s=0, lag_timeout_s=DEADLINE_S)


async def test_a_bus_without_members_reports_a_group_consumed_in_another_process(
    uncached: KafkaSettings, kafka_buses: list[AioKafkaEventBus], member_process: list[Member]
) -> None:
    observer = AioKafkaEventBus(uncached)
    kafka_buses.append(observer)
    topic, group = unique("t"), unique("worker")
    await observer.declare([TopicSpec(topic, 2, 60_000)])  # as every process declares them
    member = await start_member(member_process, uncached, topic, group)
    await observer.publish([message(topic, f"k{n}", n) for n in range(10)])
    assert await member.ask("drain 10") == {"delivered": 10}
    before = await member.ask("state")
    # Nothing committed yet: which topics the group reads is unknown here (tansu's group
    # descriptions carry no subscriptions), so it is not reported.
    assert group not in await observer.lag()
    await member.ask("commit 4")
    assert (await observer.lag())[group] == 6
    await member.ask("commit 10")
    assert (await observer.lag())[group] == 0
    await observer.publish([message(topic, f"k{n}", n) for n in range(10, 15)])
    assert (await observer.lag())[group] == 5
    assert await member.ask("drain 5") == {"delivered": 15}
    await member.ask("commit 13")
    assert (await observer.lag())[group] == 2
    # Reading the lag never joined the group: a join would have made the member give its
    # partitions back and rejoin under a new generation (heartbeats every 300 ms tell it).
    await asyncio.sleep(1.5)
    after = await member.ask("state")
    assert after == before and after["rebalancing"] is False and after["assignment"] == [0, 1]
    assert not observer._subscriptions, "the observer has no member of any group"


async def test_groups_on_other_topics_are_not_reported(
    uncached: KafkaSettings, kafka_buses: list[AioKafkaEventBus]
) -> None:
    ours, elsewhere = AioKafkaEventBus(uncached), AioKafkaEventBus(uncached)
    observer = AioKafkaEventBus(uncached)
    kafka_buses.extend([ours, elsewhere, observer])
    topic, other = unique("t"), unique("other")
    await ours.declare([TopicSpec(topic, 2, 60_000)])
    await observer.declare([TopicSpec(topic, 2, 60_000)])
    await elsewhere.declare([TopicSpec(other, 2, 60_000)])  # not codeexec's, for the observer
    groups = {}
    for bus, name in ((ours, topic), (elsewhere, other)):
        group = unique("g")
        sub = await bus.subscribe(group, [name])
        await bus.publish([message(name, f"k{n}", n) for n in range(4)])
        await commit_all(sub, (await drain(sub, 4))[:1])
        groups[name] = group
    lag = await observer.lag()
    assert lag[groups[topic]] == 3
    assert groups[other] not in lag
    assert (await elsewhere.lag())[groups[other]] == 3  # its own member's topic is its own


async def test_an_answer_is_reused_for_lag_cache_s(
    kafka_settings: KafkaSettings, kafka_buses: list[AioKafkaEventBus]
) -> None:
    member_bus = AioKafkaEventBus(kafka_settings)
    observer = AioKafkaEventBus(dataclasses.replace(kafka_settings, lag_cache_s=1.0))
    kafka_buses.extend([member_bus, observer])
    topic, group = unique("t"), unique("g")
    await member_bus.declare([TopicSpec(topic, 2, 60_000)])
    await observer.declare([TopicSpec(topic, 2, 60_000)])
    sub = await member_bus.subscribe(group, [topic])
    await member_bus.publish([message(topic, f"k{n}", n) for n in range(8)])
    got = await drain(sub, 8)
    await commit_all(sub, got[:2])
    assert (await observer.lag())[group] == 6
    await commit_all(sub, got)
    assert (await observer.lag())[group] == 6  # the cached answer
    assert observer._lag.refreshes == 1
    await asyncio.sleep(1.1)
    assert (await observer.lag())[group] == 0
    assert observer._lag.refreshes == 2


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A listener that accepts connections and never answers a request."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


async def test_a_broker_that_does_not_answer_holds_the_caller_at_most_lag_timeout_s(
    silent_broker: str, kafka_buses: list[AioKafkaEventBus], caplog: pytest.LogCaptureFixture
) -> None:
    bus = AioKafkaEventBus(
        KafkaSettings(bootstrap_servers=silent_broker, lag_cache_s=0, lag_timeout_s=0.3)
    )
    kafka_buses.append(bus)
    with caplog.at_level(logging.WARNING, logger="codeexec_kafka.lag"):
        assert await asyncio.wait_for(bus.lag(), 5) == {}  # nothing known yet
        waiting = bus._lag._reading
        for _ in range(2):  # the refresh that began is still late: no wait, no second one
            assert await asyncio.wait_for(bus.lag(), 0.1) == {}
        assert bus._lag._reading is waiting and waiting is not None and not waiting.done()
    warnings = [r for r in caplog.records if r.name == "codeexec_kafka.lag"]
    assert len(warnings) == 1 and "no answer within 0.3s" in warnings[0].getMessage()


async def test_brokers_that_refuse_are_asked_again_only_after_lag_cache_s(
    kafka_buses: list[AioKafkaEventBus], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as unused:  # a port nothing listens on: connections are refused
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    bus = AioKafkaEventBus(
        KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", lag_cache_s=0.5, lag_timeout_s=5)
    )
    kafka_buses.append(bus)
    with caplog.at_level(logging.WARNING, logger="codeexec_kafka.lag"):
        assert await bus.lag() == {}
        failed = bus._lag._reading
        assert failed is not None and failed.done()
        assert await bus.lag() == {}
        assert bus._lag._reading is failed  # not asked again within lag_cache_s
        await asyncio.sleep(0.6)
        assert await bus.lag() == {}
        assert bus._lag._reading is not failed
    warnings = [r for r in caplog.records if r.name == "codeexec_kafka.lag"]
    assert len(warnings) == 1 and "KafkaConnectionError" in warnings[0].getMessage()


async def test_while_the_broker_does_not_answer_the_last_answer_is_reported(
    uncached: KafkaSettings, kafka_buses: list[AioKafkaEventBus], monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = AioKafkaEventBus(dataclasses.replace(uncached, lag_timeout_s=0.3))
    kafka_buses.append(bus)
    topic, group = unique("t"), unique("g")
    await bus.declare([TopicSpec(topic, 2, 60_000)])
    sub = await bus.subscribe(group, [topic])
    await bus.publish([message(topic, f"k{n}", n) for n in range(5)])
    await commit_all(sub, (await drain(sub, 5))[:1])
    assert (await bus.lag())[group] == 4
    stalled = asyncio.Event()

    async def never_answers(*_: object) -> dict[str, int]:
        await stalled.wait()
        return {}

    monkeypatch.setattr(bus._lag, "_read", never_answers)
    assert (await asyncio.wait_for(bus.lag(), 5))[group] == 4
