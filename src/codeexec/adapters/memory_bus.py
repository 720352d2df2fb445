"""InMemoryEventBus: partitioned topics, consumer groups, committed offsets, redelivery."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from codeexec.domain.routing import TopicSpec
from codeexec.ports.bus import (
    H_REPLAY,
    EventBus,
    Message,
    Subscription,
    TopicPartition,
    UnknownTopic,
)

MAX_UNCONSUMED = 100_000
TRIM_STEP = 1024  # messages every group has read are dropped this many at a time at least


def _first_relayed(part: _Partition, index: int) -> int | None:
    for message in itertools.islice(part.messages, index, None):
        if H_REPLAY not in message.headers and message.position is not None:
            return message.position
    return None


def partition_for(key: str, partitions: int) -> int:
    """Stable across processes (unlike hash()), so a key always lands on one partition."""
    return zlib.crc32(key.encode("utf-8")) % partitions


@dataclass
class _Partition:
    base: int = 0  # offset of messages[0]; older ones were trimmed once every group had them
    messages: list[Message] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # when each message was published

    def drop_head(self, count: int) -> None:
        del self.messages[:count], self.times[:count]
        self.base += count

    @property
    def end(self) -> int:
        return self.base + len(self.messages)


@dataclass
class _Group:
    topics: set[str] = field(default_factory=set)
    members: list[InMemorySubscription] = field(default_factory=list)
    committed: dict[TopicPartition, int] = field(default_factory=dict)


class InMemoryEventBus(EventBus):
    durable = False

    def __init__(self) -> None:
        self._topics: dict[str, list[_Partition]] = {}
        self._groups: dict[str, _Group] = {}
        self._ids = itertools.count()
        self._retention_s: dict[str, float] = {}
        self._relayed: set[str] = set()  # topics the relay publishes to
        self._tails: list[InMemoryTail] = []

    async def declare(self, topics: Sequence[TopicSpec]) -> None:
        for spec in topics:
            self._topics.setdefault(spec.name, [_Partition() for _ in range(spec.partitions)])
            self._retention_s[spec.name] = spec.retention_ms / 1000

    def partitions(self, topic: str) -> int:
        return len(self._partitions(topic))

    def _partitions(self, topic: str) -> list[_Partition]:
        try:
            return self._topics[topic]
        except KeyError:
            raise UnknownTopic(f"topic {topic!r} is not declared") from None

    async def publish(self, messages: Sequence[Message]) -> None:
        now = time.monotonic()
        touched: set[str] = set()
        for message in messages:
            parts = self._partitions(message.topic)
            index = (
                partition_for(message.key, len(parts))
                if message.partition < 0
                else (message.partition)
            )
            part = parts[index]
            part.messages.append(
                Message(message.topic, message.key, message.value, message.headers, index, part.end)
            )
            part.times.append(now)
            touched.add(message.topic)
            if H_REPLAY not in message.headers and message.position is not None:
                self._relayed.add(message.topic)
        for topic in touched - self._consumed_topics():
            self._expire(topic, now)
        for group in self._groups.values():
            if group.topics & touched:
                for member in group.members:
                    member.wake()
        for tail in self._tails:
            if tail.topics & touched:
                tail.wake()

    async def subscribe(self, group: str, topics: Sequence[str]) -> InMemorySubscription:
        for topic in topics:
            self._partitions(topic)
        state = self._groups.setdefault(group, _Group())
        state.topics.update(topics)
        member = InMemorySubscription(self, group, next(self._ids))
        state.members.append(member)
        self._rebalance(state)
        return member

    async def tail(self, topics: Sequence[str], latency_s: float = 0.02) -> InMemoryTail:
        tail = InMemoryTail(self, frozenset(topics))
        for topic in topics:
            for index, part in enumerate(self._partitions(topic)):
                tail.positions[TopicPartition(topic, index)] = part.end
        self._tails.append(tail)
        return tail

    def _rebalance(self, group: _Group) -> None:
        """Every member restarts from the committed offsets: uncommitted work is redelivered."""
        group.members.sort(key=lambda m: m.member_id)
        for member in group.members:
            member.positions = {}
        if not group.members:
            return
        cycle = itertools.cycle(group.members)
        for topic in sorted(group.topics):
            for index in range(len(self._topics[topic])):
                tp = TopicPartition(topic, index)
                next(cycle).positions[tp] = group.committed.get(tp, 0)
        for member in group.members:
            member.wake()

    def _leave(self, member: InMemorySubscription) -> None:
        group = self._groups[member.group]
        if member in group.members:
            group.members.remove(member)
            self._rebalance(group)

    def _fetch(self, member: InMemorySubscription, max_records: int) -> list[Message]:
        out: list[Message] = []
        for tp, position in member.positions.items():
            if len(out) >= max_records:
                break
            part = self._topics[tp.topic][tp.partition]
            start = max(position, part.base) - part.base
            batch = part.messages[start : start + max_records - len(out)]
            if batch:
                out.extend(batch)
                member.positions[tp] = batch[-1].offset + 1
        return out

    def _commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        committed = self._groups[group].committed
        for tp, offset in offsets.items():
            if offset > committed.get(tp, 0):
                committed[tp] = offset
        # The floor of all groups is at most this one's offset: where that is within the
        # trim's step of the partition's head, nothing can go, so no floor is computed.
        ahead = [
            tp
            for tp in offsets
            if committed.get(tp, 0) - self._topics[tp.topic][tp.partition].base > TRIM_STEP
        ]
        self._trim(ahead)

    def _trim(self, tps: object) -> None:
        for tp in tps:  # type: ignore[attr-defined]
            floor = min(
                (g.committed.get(tp, 0) for g in self._groups.values() if tp.topic in g.topics),
                default=0,
            )
            part = self._topics[tp.topic][tp.partition]
            if floor - part.base > TRIM_STEP:
                part.drop_head(floor - part.base)

    def _consumed_topics(self) -> set[str]:
        return {topic for group in self._groups.values() for topic in group.topics}

    def _expire(self, topic: str, now: float) -> None:
        """A topic nobody consumes (a replay's scratch target) keeps messages for its
        retention, and at most MAX_UNCONSUMED per partition, so memory stays bounded."""
        cutoff = now - self._retention_s.get(topic, float("inf"))
        for part in self._topics[topic]:
            expired = bisect.bisect_left(part.times, cutoff)
            excess = len(part.messages) - MAX_UNCONSUMED
            if max(expired, excess) > 0:
                part.drop_head(max(expired, excess))

    def redeliver(self, group: str, *, forget_commits: bool = False) -> None:
        """Simulate a consumer crash: uncommitted messages (or, having lost its commits,
        everything still retained) are delivered to the group again."""
        state = self._groups[group]
        if forget_commits:
            state.committed.clear()
        self._rebalance(state)

    def settled_position(self) -> int | None:
        """The lowest store position some group has not committed yet (None: all settled).
        A relay on this non-durable bus restarts from here after a crash. Only what the
        relay published counts (replays carry old positions but are not its to resend)."""
        lowest: int | None = None
        consumed = self._consumed_topics()
        for topic in self._relayed:
            for index, part in enumerate(self._topics[topic]):
                offsets = [
                    g.committed.get(TopicPartition(topic, index), 0)
                    for g in self._groups.values()
                    if topic in g.topics
                ]
                # A topic nobody consumes yet (its consumer may start later) is unsettled.
                start = min(offsets) if topic in consumed else part.base
                pos = _first_relayed(part, max(start - part.base, 0))
                if pos is not None and (lowest is None or pos < lowest):
                    lowest = pos
        return lowest

    def backlog(self, group: str) -> int:
        """Messages published but not committed by the group (consumer lag)."""
        state = self._groups.get(group)
        if state is None:
            return 0
        return sum(
            part.end - state.committed.get(TopicPartition(topic, i), 0)
            for topic in state.topics
            for i, part in enumerate(self._topics[topic])
        )

    def groups(self) -> list[str]:
        return sorted(self._groups)

    async def lag(self) -> Mapping[str, int]:
        return {group: self.backlog(group) for group in self.groups()}


class InMemorySubscription(Subscription):
    def __init__(self, bus: InMemoryEventBus, group: str, member_id: int) -> None:
        self.bus, self.group, self.member_id = bus, group, member_id
        self.positions: dict[TopicPartition, int] = {}
        self._signal = asyncio.Event()
        self.closed = False

    def wake(self) -> None:
        self._signal.set()

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        if self.closed:
            raise RuntimeError("subscription is closed")
        self._signal.clear()
        batch = self.bus._fetch(self, max_records)
        if batch or timeout <= 0:
            return batch
        try:
            # Not wait_for: on 3.11 it swallows a cancel that meets the wake-up, and a
            # stopping role's tail went on polling until its stop timed out.
            async with asyncio.timeout(timeout):
                await self._signal.wait()
        except TimeoutError:
            return []
        return [] if self.closed else self.bus._fetch(self, max_records)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not self.closed:
            self.bus._commit(self.group, offsets)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.bus._leave(self)
            self._signal.set()


class InMemoryTail(InMemorySubscription):
    """A reader from the end of its topics, in no consumer group: commits nothing, and
    misses what expires before it reads (it is for waking, not for processing)."""

    def __init__(self, bus: InMemoryEventBus, topics: frozenset[str]) -> None:
        super().__init__(bus, "", -1)
        self.topics = topics

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        pass

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.bus._tails.remove(self)
            self._signal.set()
