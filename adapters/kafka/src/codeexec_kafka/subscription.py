"""AioKafkaSubscription: one member of a consumer group, committing only what the core asks."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError
from aiokafka.structs import TopicPartition as KafkaTopicPartition

from codeexec.ports.bus import Message, Subscription, TopicPartition
from codeexec_kafka.records import to_messages
from codeexec_kafka.settings import KafkaSettings

log = logging.getLogger(__name__)


class AioKafkaSubscription(Subscription):
    """Delivered-but-uncommitted offsets are tracked per partition. When the group takes a
    partition away, the rebalance waits (up to `revoke_grace_s`) for the batch in flight to
    be committed; after that, commits for that partition are dropped, never applied to a
    partition another member now owns: the new owner gets those messages again, and the
    core's tracking makes handling them a second time change nothing."""

    def __init__(
        self,
        settings: KafkaSettings,
        group: str,
        topics: Sequence[str],
        on_close: Callable[[AioKafkaSubscription], None],
    ) -> None:
        self.settings, self.group, self.topics = settings, group, tuple(topics)
        self.consumer = AIOKafkaConsumer(**settings.consumer_options(group))
        self._on_close = on_close
        self._delivered: dict[TopicPartition, int] = {}  # next offset after what poll returned
        self._committed: dict[TopicPartition, int] = {}
        self._settled = asyncio.Condition()
        self.rebalancing = False  # partitions are being taken back; new records wait
        self.closed = False

    async def start(self) -> None:
        await self.consumer.start()
        # A pattern of exactly these names: the consumer then asks for all topics' metadata,
        # never for one by name, which would create it on brokers that auto-create topics.
        pattern = "^(" + "|".join(re.escape(t) for t in self.topics) + ")$"
        self.consumer.subscribe(pattern=pattern, listener=_Listener(self))

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        if self.closed:
            raise RuntimeError("subscription is closed")
        try:
            batches = await self.consumer.getmany(
                timeout_ms=max(int(timeout * 1000), 0), max_records=max_records
            )
        except ConsumerStoppedError:
            return []
        if self.rebalancing:
            return []  # fetched before the revocation: the next owner reads them again
        owned = self.consumer.assignment()
        out: list[Message] = []
        for ktp, records in batches.items():
            if ktp not in owned or not records:
                continue  # revoked while the fetch was on its way
            tp = TopicPartition(ktp.topic, ktp.partition)
            out.extend(to_messages(records))
            self._delivered[tp] = records[-1].offset + 1
        return out

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.closed:
            return
        # Only partitions delivered under the current assignment: a commit for a revoked
        # partition could move back the offset its new owner committed.
        owned = {tp: n for tp, n in offsets.items() if tp in self._delivered}
        if len(owned) < len(offsets):
            log.info(
                "%s: not committing revoked partitions %s (redelivered to their new owner)",
                self.group,
                sorted((tp.topic, tp.partition) for tp in offsets.keys() - owned.keys()),
            )
        if not owned:
            return
        try:
            await self.consumer.commit(
                {KafkaTopicPartition(tp.topic, tp.partition): n for tp, n in owned.items()}
            )
        except (CommitFailedError, IllegalStateError) as error:
            # The group moved on without us; the messages are delivered again.
            log.warning(
                "%s: commit not applied (%s); messages will be redelivered", self.group, error
            )
            return
        async with self._settled:
            for tp, n in owned.items():
                self._committed[tp] = max(self._committed.get(tp, 0), n)
            self._settled.notify_all()

    async def _on_revoked(self, revoked: set[KafkaTopicPartition]) -> None:
        self.rebalancing = bool(revoked)
        tps = {TopicPartition(k.topic, k.partition) for k in revoked}

        def settled() -> bool:
            return self.closed or all(
                self._committed.get(tp, 0) >= self._delivered[tp]
                for tp in tps
                if tp in self._delivered
            )

        async with self._settled:
            try:
                await asyncio.wait_for(
                    self._settled.wait_for(settled), self.settings.revoke_grace_s
                )
            except TimeoutError:
                log.warning(
                    "%s: work in flight on revoked partitions was not committed within %.1fs; "
                    "abandoned to the new owner",
                    self.group,
                    self.settings.revoke_grace_s,
                )
            for tp in tps:
                self._delivered.pop(tp, None)
                self._committed.pop(tp, None)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        async with self._settled:
            self._settled.notify_all()  # a rebalance waiting on us stops waiting
        try:
            await self.consumer.stop()  # leaves the group: the rest take over at once
        finally:
            self._on_close(self)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, subscription: AioKafkaSubscription) -> None:
        self.subscription = subscription

    async def on_partitions_revoked(self, revoked: set[KafkaTopicPartition]) -> None:
        await self.subscription._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[KafkaTopicPartition]) -> None:
        # Fetching resumes from the group's committed offsets of the new assignment.
        self.subscription.rebalancing = False
        log.debug("%s: assigned %s", self.subscription.group, sorted(assigned))
