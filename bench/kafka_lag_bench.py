"""Consumer lag read from a process with no members (an API process on Kafka): the time of
one fresh answer and of a cached one, against a tansu broker.

Prints `bench: NAME VALUE UNIT` lines. The groups commit on the topic table's topics
(execution_events 16 partitions, execution_tasks 4, dead_letters 1), as the roles do."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time

from codeexec.domain.routing import TOPICS
from codeexec.ports.bus import Message, TopicPartition
from codeexec_kafka import AioKafkaEventBus, KafkaSettings
from codeexec_kafka.tansu import TansuBroker

GROUPS = {
    "coordinator": "execution_events",
    "saga": "execution_events",
    "projections": "execution_events",
    "worker-1": "execution_tasks",
    "dead-letter-manager": "dead_letters",
}


async def measure(bootstrap: str, calls: int) -> None:
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    roles = AioKafkaEventBus(settings)
    api = AioKafkaEventBus(dataclasses.replace(settings, lag_cache_s=0))
    cached = AioKafkaEventBus(settings)
    try:
        await roles.declare(list(TOPICS.values()))
        for bus in (api, cached):
            await bus.declare(list(TOPICS.values()))
        for topic in set(GROUPS.values()):
            await roles.publish([Message(topic, f"k{n}", b"x" * 600) for n in range(2000)])
        for group, topic in GROUPS.items():
            sub = await roles.subscribe(group, [topic])
            got: list[Message] = []
            while not got:
                got = await sub.poll(10, timeout=1.0)
            await sub.commit({TopicPartition(got[0].topic, got[0].partition): got[0].offset + 1})
            await sub.close()
        await api.lag()  # clients connected
        fresh = []
        for _ in range(calls):
            started = time.perf_counter()
            lag = await api.lag()
            fresh.append(time.perf_counter() - started)
        assert set(GROUPS) <= lag.keys(), lag
        await cached.lag()
        hits = []
        for _ in range(calls):
            started = time.perf_counter()
            await cached.lag()
            hits.append(time.perf_counter() - started)
        print(f"bench: kafka_lag_fresh_answer_ms {statistics.median(fresh) * 1000:.1f} ms")
        print(f"bench: kafka_lag_cached_answer_us {statistics.median(hits) * 1e6:.1f} us")
    finally:
        for bus in (roles, api, cached):
            await bus.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    with TansuBroker() as broker:
        asyncio.run(measure(broker.bootstrap, args.calls))


if __name__ == "__main__":
    main()
