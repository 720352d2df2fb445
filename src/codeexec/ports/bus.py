"""The event bus port: keyed, partitioned topics with consumer groups and committed offsets."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from codeexec.domain.routing import TopicSpec

# Header names every adapter carries unchanged.
H_TYPE = "event-type"
H_POSITION = "position"  # the event's notification id in the event store
H_SCHEMA = "schema-version"  # of the event's document, so readers can tell before parsing
H_CORRELATION = "correlation-id"  # the execution (or operation) the event belongs to
H_REPLAY = "replay-session"  # set on replayed events: never new work
H_DEAD_LETTER = "dead-letter-id"  # set when a dead letter is retried to its original topic
H_DL_GROUP = "dead-letter-group"  # the one consumer group a retried dead letter is for
H_DL_ATTEMPT = "dead-letter-attempt"  # which retry this is (1, 2, ...)


class UnknownTopic(LookupError):
    """Topics are declared, never auto-created."""


@dataclass(frozen=True)
class Message:
    topic: str
    key: str
    value: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    partition: int = -1
    offset: int = -1

    @cached_property
    def position(self) -> int | None:
        raw = self.headers.get(H_POSITION)
        return int(raw) if raw is not None else None


@dataclass(frozen=True)
class TopicPartition:
    topic: str
    partition: int


class Subscription(ABC):
    """One member of a consumer group. Delivery is at least once: whatever is not committed
    when a member leaves (or crashes) is delivered again to the group."""

    @abstractmethod
    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        """Wait up to `timeout` seconds for messages from the assigned partitions."""

    @abstractmethod
    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit, per partition, the offset of the next message to consume."""

    @abstractmethod
    async def close(self) -> None:
        """Leave the group; uncommitted messages go to the remaining members."""


class EventBus(ABC):
    durable: bool = True
    """False when messages do not survive a restart (the relay then republishes)."""

    @abstractmethod
    async def declare(self, topics: Sequence[TopicSpec]) -> None:
        """Create the topics if missing, with their partitions and retention."""

    @abstractmethod
    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish in order and return when the bus has acknowledged all of them."""

    @abstractmethod
    async def subscribe(self, group: str, topics: Sequence[str]) -> Subscription:
        """Join a consumer group on the given topics."""

    def settled_position(self) -> int | None:
        """Only asked of a bus that is not `durable`: the lowest store position some
        consumer group has not committed yet (None: everything is settled). Its messages die
        with the process, so after a crash the relay publishes again from there."""
        raise NotImplementedError(f"{type(self).__name__} is durable; nothing to settle")

    async def lag(self) -> Mapping[str, int]:
        """Consumer lag: per consumer group (those this bus can see), the messages published
        and not yet committed. A bus that cannot tell returns nothing."""
        return {}

    async def tail(self, topics: Sequence[str], latency_s: float = 0.02) -> Subscription:
        """Follow the topics from their end, outside any consumer group: every message
        published after this returns, from every partition, reaches this one reader (each
        API process tails `execution_events` to wake its live event streams, whichever
        process recorded the events). Nothing is committed (`commit` does nothing) and
        nothing is redelivered: a reader that needs every event reads the store.
        `latency_s`: how soon a new message must be seen; a bus may poll less often for a
        reader that can wait (on Kafka, the fetch's wait)."""
        raise NotImplementedError(f"{type(self).__name__} cannot tail topics")

    async def close(self) -> None:
        """Release connections."""
