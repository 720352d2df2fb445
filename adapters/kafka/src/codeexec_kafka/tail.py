"""AioKafkaTail: follows topics from their end, outside any consumer group.

Each API process tails `execution_events` to wake its live event streams, whichever process
recorded the events. No group means no rebalances, no commits and no group left behind in
the broker; a short fetch wait keeps the wake-up latency low."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ConsumerStoppedError
from aiokafka.structs import TopicPartition as KafkaTopicPartition

from codeexec.ports.bus import Message, Subscription, TopicPartition
from codeexec_kafka.records import to_messages
from codeexec_kafka.settings import KafkaSettings

TAIL_FETCH_MAX_WAIT_MS = 20
"""aiokafka's default (500 ms) is the latency a live stream would add to every event."""


class AioKafkaTail(Subscription):
    def __init__(
        self,
        settings: KafkaSettings,
        partitions: Mapping[str, int],
        fetch_max_wait_ms: int = TAIL_FETCH_MAX_WAIT_MS,
    ) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.consumer = AIOKafkaConsumer(
            **settings.client_options(),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self._assigned = [
            KafkaTopicPartition(topic, partition)
            for topic, count in partitions.items()
            for partition in range(count)
        ]
        self._floor: dict[KafkaTopicPartition, int] = {}
        self.closed = False

    async def start(self, timeout: float = 10.0) -> None:
        """Fix "the end" before returning. Some brokers (tansu 0.6) answer a ListOffsets
        for the latest offset with the last batch's base offset + 1, inside the batch; a
        fetch's high watermark is exact everywhere, so the end of each partition is the
        high watermark seen by a first fetch, and records below it are dropped."""
        await self.consumer.start()
        self.consumer.assign(self._assigned)
        await self.consumer.seek_to_end(*self._assigned)
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self._floor) < len(self._assigned):
            await self.consumer.getmany(timeout_ms=self.fetch_max_wait_ms * 2)
            for tp in self._assigned:
                highwater = self.consumer.highwater(tp)
                if highwater is not None:
                    self._floor.setdefault(tp, highwater)
            if asyncio.get_running_loop().time() > deadline:
                await self.consumer.stop()
                raise TimeoutError("the broker did not report where its partitions end")
        for tp, floor in self._floor.items():
            self.consumer.seek(tp, floor)

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        if self.closed:
            raise RuntimeError("tail is closed")
        try:
            batches = await self.consumer.getmany(
                timeout_ms=max(int(timeout * 1000), 0), max_records=max_records
            )
        except ConsumerStoppedError:
            return []
        return [
            m
            for tp, records in batches.items()
            for m in to_messages(r for r in records if r.offset >= self._floor[tp])
        ]

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """A tail commits nothing: it is not a member of any group."""

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.consumer.stop()
