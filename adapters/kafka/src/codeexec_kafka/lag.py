"""GroupLag: consumer lag of every group on codeexec's topics, read from the brokers, joining none.

An API-only process has no members, yet its dashboard and `/metrics` show every group's lag:
the groups come from ListGroups (every broker), their committed offsets from OffsetFetch
naming the partitions (the form without partitions is not decoded by aiokafka 0.14 from
tansu 0.6), the ends from a group-less consumer's fetch high watermarks (tansu 0.6 answers
ListOffsets with the last batch's base offset + 1). None of these requests joins a group,
so the groups' members never rebalance. Answers are cached for `lag_cache_s` and a caller
waits at most `lag_timeout_s` for a fresh one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from codeexec_kafka.settings import KafkaSettings
from codeexec_kafka.topics import existing_topics

log = logging.getLogger(__name__)

AdminClient = Callable[[], Awaitable[AIOKafkaAdminClient]]


class GroupLag:
    """One refresh at a time: callers arriving while one runs wait for it instead of
    starting another, but never past `lag_timeout_s` after it began; a refresh the brokers
    do not finish keeps running in the background (bounded by the request timeout) and its
    answer serves later callers. Meanwhile callers get the last answer, and the problem is
    logged once. A failed refresh is retried no sooner than a successful one would be
    (`lag_cache_s`), so brokers that are down are not asked at every call."""

    def __init__(self, settings: KafkaSettings, admin_client: AdminClient) -> None:
        self.settings = settings
        self._admin_client = admin_client
        self._probe: AIOKafkaConsumer | None = None
        self._coordinators: dict[str, int] = {}  # group -> broker id, until an error
        self._known: dict[str, int] = {}
        self._tried_at: float | None = None  # loop time the last refresh ended
        self._reading: asyncio.Task[None] | None = None
        self._reading_since = 0.0
        self._failing = False
        self.refreshes = 0  # successful refreshes (tests and benchmarks count round trips)

    async def lag(
        self, topics: Collection[str], members: Mapping[str, Collection[str]]
    ) -> dict[str, int]:
        """Per group with a committed offset on one of `topics`, or with a member here
        (`members`: group -> its topics): messages after its committed offsets."""
        loop = asyncio.get_running_loop()
        if self._tried_at is not None and loop.time() - self._tried_at < self.settings.lag_cache_s:
            return dict(self._known)
        if self._reading is None or self._reading.done():
            wanted = set(topics)
            local = {group: set(ts) & wanted for group, ts in members.items()}
            self._reading = asyncio.create_task(self._refresh(wanted, local))
            self._reading_since = loop.time()
        left = self._reading_since + self.settings.lag_timeout_s - loop.time()
        try:
            await asyncio.wait_for(asyncio.shield(self._reading), max(left, 0))
        except TimeoutError:
            self._failed(f"no answer within {self.settings.lag_timeout_s:g}s")
        return dict(self._known)

    async def _refresh(self, topics: set[str], members: dict[str, set[str]]) -> None:
        try:
            self._known = await self._read(topics, members)
        except (KafkaError, OSError, ValueError) as error:  # ValueError: an undecodable answer
            self._failed(repr(error))
            return
        finally:
            self._tried_at = asyncio.get_running_loop().time()
        self.refreshes += 1
        if self._failing:
            self._failing = False
            log.info("consumer lag: the brokers answer again")

    def _failed(self, why: str) -> None:
        if not self._failing:
            self._failing = True
            log.warning(
                "consumer lag: %s; reporting the last lag read until the brokers answer", why
            )

    async def _read(self, topics: set[str], members: dict[str, set[str]]) -> dict[str, int]:
        admin = await self._admin_client()
        counts = {t: n for t, n in (await existing_topics(admin)).items() if t in topics}
        tps = [TopicPartition(t, p) for t, n in sorted(counts.items()) for p in range(n)]
        listed = {str(group) for group, _protocol in await admin.list_consumer_groups()}
        groups = sorted(listed | members.keys())
        self._coordinators = {g: b for g, b in self._coordinators.items() if g in listed}
        offsets = await asyncio.gather(*(self._committed(admin, g, tps) for g in groups))
        committed = dict(zip(groups, offsets, strict=True))
        consumed = {
            group: ({tp.topic for tp in committed[group]} | members.get(group, set()))
            & counts.keys()
            for group in groups
        }
        consumed = {group: ts for group, ts in consumed.items() if ts}
        needed = [tp for tp in tps if any(tp.topic in ts for ts in consumed.values())]
        starts, ends = await self._bounds(needed)
        return {
            group: sum(
                max(ends[tp] - max(committed[group].get(tp, 0), starts[tp]), 0)
                for tp in needed
                if tp.topic in ts
            )
            for group, ts in consumed.items()
        }

    async def _committed(
        self, admin: AIOKafkaAdminClient, group: str, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """The group's committed offsets among `tps` (OffsetFetch to its coordinator, which
        reads them; it neither joins nor touches the group)."""
        if not tps:
            return {}
        coordinator = self._coordinators.get(group)
        if coordinator is None:
            coordinator = await admin.find_coordinator(group)
        try:
            answer = await admin.list_consumer_group_offsets(group, coordinator, tps)
        except KafkaError:
            self._coordinators.pop(group, None)  # it may have moved: look it up next time
            raise
        self._coordinators[group] = coordinator
        return {tp: meta.offset for tp, meta in answer.items() if meta.offset >= 0}

    async def _bounds(
        self, tps: list[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """Log start and end of each partition. The end is the high watermark of a fetch
        from the end: exact everywhere, where ListOffsets is not on tansu 0.6."""
        if not tps:
            return {}, {}
        probe = await self._probe_consumer()
        starts = await probe.beginning_offsets(tps)
        probe.assign(tps)
        try:
            await probe.seek_to_end(*tps)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.settings.request_timeout_ms / 1000
            wait_ms = max(self.settings.fetch_max_wait_ms * 2, 10)
            while True:
                ends = {tp: probe.highwater(tp) for tp in tps}
                if all(end is not None for end in ends.values()):
                    return starts, {tp: int(end or 0) for tp, end in ends.items()}
                if loop.time() > deadline:
                    raise KafkaError("no fetch answer gave the partitions' ends")
                await probe.getmany(timeout_ms=wait_ms)
        finally:
            probe.unsubscribe()  # no fetching between refreshes

    async def _probe_consumer(self) -> AIOKafkaConsumer:
        if self._probe is None:
            probe = AIOKafkaConsumer(
                **self.settings.client_options(),
                group_id=None,  # no group: it never joins or commits
                enable_auto_commit=False,
                fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            )
            await probe.start()
            self._probe = probe
        return self._probe

    async def close(self) -> None:
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)
        if self._probe is not None:
            await self._probe.stop()
            self._probe = None
