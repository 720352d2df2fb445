"""AioKafkaEventBus: the EventBus port on Kafka (aiokafka), at least once, ordered per key."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from codeexec.domain.routing import TOPICS, TopicSpec
from codeexec.ports.bus import EventBus, Message, UnknownTopic
from codeexec_kafka.lag import GroupLag
from codeexec_kafka.settings import KafkaSettings
from codeexec_kafka.subscription import AioKafkaSubscription
from codeexec_kafka.tail import AioKafkaTail
from codeexec_kafka.topics import declare_topics, existing_topics

log = logging.getLogger(__name__)


class AioKafkaEventBus(EventBus):
    """Messages are keyed by execution id (Message.key), so one execution's events stay in
    order on one partition; headers travel unchanged. Clients connect on first use and
    `close` flushes what is pending and leaves every group."""

    durable = True

    def __init__(self, settings: KafkaSettings | None = None) -> None:
        self.settings = settings or KafkaSettings()
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._partitions: dict[str, int] = {}  # topics known to exist, with partition counts
        self._declared: set[str] = set()  # codeexec's topics beyond TOPICS (replay targets)
        self._subscriptions: dict[str, list[AioKafkaSubscription]] = {}
        self._lock = asyncio.Lock()
        self._closed = False
        self._lag = GroupLag(self.settings, self._admin_client)

    # -- connections ----------------------------------------------------------------------

    async def _admin_client(self) -> AIOKafkaAdminClient:
        async with self._lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(**self.settings.client_options())
                await admin.start()
                self._admin = admin
            return self._admin

    async def _producer_client(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._closed:
                raise RuntimeError("the bus is closed")
            if self._producer is None:
                producer = AIOKafkaProducer(**self.settings.producer_options())
                await producer.start()
                self._producer = producer
            return self._producer

    # -- topics ---------------------------------------------------------------------------

    async def declare(self, topics: Sequence[TopicSpec]) -> None:
        counts = self.settings.partition_counts()
        unknown = sorted(counts.keys() - TOPICS.keys() - {spec.name for spec in topics})
        if unknown:
            raise UnknownTopic(
                f"CODEEXEC_KAFKA_PARTITIONS names {unknown[0]!r}, which is not declared"
            )
        topics = [
            dataclasses.replace(spec, partitions=counts.get(spec.name, spec.partitions))
            for spec in topics
        ]
        admin = await self._admin_client()
        declared = await declare_topics(admin, topics, self.settings.replication_factor)
        self._partitions.update(declared)
        self._declared.update(declared)

    async def _require(self, topics: set[str]) -> None:
        """Topics are declared, never auto-created: a topic this bus has not seen is looked
        up among all the cluster's topics (never by name) before any client names it."""
        unknown = topics - self._partitions.keys()
        if not unknown:
            return
        self._partitions.update(await existing_topics(await self._admin_client()))
        still = sorted(unknown - self._partitions.keys())
        if still:
            raise UnknownTopic(f"topic {still[0]!r} is not declared")

    # -- publishing -----------------------------------------------------------------------

    async def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        await self._require({m.topic for m in messages})
        producer = await self._producer_client()
        # The producer's client must never ask for an unknown topic by name (that creates
        # it on brokers that auto-create): give it the metadata of all topics first.
        cluster = producer.client.cluster
        if any(cluster.partitions_for_topic(t) is None for t in {m.topic for m in messages}):
            await producer.client.force_metadata_update()
        pending: list[asyncio.Future[object]] = []
        limit = self.settings.max_in_flight_messages
        for message in messages:
            pending.append(
                await producer.send(
                    message.topic,
                    value=message.value,
                    key=message.key.encode("utf-8"),
                    partition=message.partition if message.partition >= 0 else None,
                    headers=[(k, v.encode("utf-8")) for k, v in message.headers.items()],
                )
            )
            if len(pending) >= limit:
                await _acknowledged(pending)
                pending = []
        await _acknowledged(pending)

    # -- consuming ------------------------------------------------------------------------

    async def subscribe(self, group: str, topics: Sequence[str]) -> AioKafkaSubscription:
        if self._closed:
            raise RuntimeError("the bus is closed")
        await self._require(set(topics))
        members = self._subscriptions.setdefault(group, [])
        subscription = AioKafkaSubscription(
            self.settings, group, list(topics), on_close=lambda s: members.remove(s)
        )
        await subscription.start()
        members.append(subscription)
        return subscription

    async def tail(self, topics: Sequence[str], latency_s: float = 0.02) -> AioKafkaTail:
        if self._closed:
            raise RuntimeError("the bus is closed")
        await self._require(set(topics))
        wait_ms = max(1, round(latency_s * 1000))
        tail = AioKafkaTail(self.settings, {t: self._partitions[t] for t in topics}, wait_ms)
        await tail.start()
        return tail

    async def lag(self) -> Mapping[str, int]:
        """Every group the brokers know with a committed offset on codeexec's topics (the
        topic table's, those this bus declared or subscribes to), and every group with a
        member here: messages after its committed offsets (end minus committed, or minus the
        log start where it committed nothing). Read without joining any group, cached for
        `lag_cache_s`; a broker that does not answer within `lag_timeout_s` gets the last
        answer reported (see codeexec_kafka.lag)."""
        members = {
            group: {topic for member in subs for topic in member.topics}
            for group, subs in list(self._subscriptions.items())
            if subs
        }
        topics = TOPICS.keys() | self._declared | {t for ts in members.values() for t in ts}
        return await self._lag.lag(topics, members)

    async def close(self) -> None:
        """Leave every group (what was not committed goes to the remaining members), then
        flush and stop the producer."""
        self._closed = True
        await self._lag.close()
        for members in list(self._subscriptions.values()):
            for subscription in list(members):
                await subscription.close()
        async with self._lock:
            if self._producer is not None:
                await self._producer.stop()  # sends what is batched, then disconnects
                self._producer = None
            if self._admin is not None:
                await self._admin.close()
                self._admin = None


async def _acknowledged(pending: list[asyncio.Future[object]]) -> None:
    """Wait for every send, then raise the first failure: at least once, the caller
    publishes again (consumers are idempotent)."""
    results = await asyncio.gather(*pending, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
