"""Event bus throughput: publish and consume through AioKafkaEventBus against a tansu broker,
side by side with the in-memory bus, plus executions through the embedded Codeexec on each.

Prints `bench: NAME VALUE UNIT` lines. Messages are event-sized (about 600 bytes of JSON),
published in batches of 1,000 as the relay does, keyed over 1,000 executions."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
import uuid

from codeexec import CoordinatorConfig, RunSpec, Settings, SourceFile, UserLimits
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.domain.routing import TopicSpec
from codeexec.ports.bus import H_POSITION, H_TYPE, EventBus, Message, TopicPartition
from codeexec.runtime import Codeexec
from codeexec_kafka import AioKafkaEventBus, KafkaSettings
from codeexec_kafka.tansu import TansuBroker

BATCH = 1000
KEYS = [str(uuid.uuid4()) for _ in range(1000)]
SPEC = RunSpec(language="fake", files=(SourceFile(name="main", content=b"out hello"),))


def messages(topic: str, n: int) -> list[Message]:
    out = []
    for i in range(n):
        key = KEYS[i % len(KEYS)]
        value = (
            b'{"schema_version":1,"execution_id":"%s","type":"ExecutionOutput","seq":%d,'
            b'"data":"%s"}' % (key.encode(), i, b"x" * 480)
        )
        out.append(Message(topic, key, value, {H_TYPE: "ExecutionOutput", H_POSITION: str(i)}))
    return out


async def bus_throughput(bus: EventBus, n: int) -> tuple[float, float]:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    await bus.declare([TopicSpec(topic, 16, 3_600_000)])
    batch = messages(topic, n)
    sub = await bus.subscribe(f"bench-{topic}", [topic])
    await sub.poll(10, timeout=0.5)  # joined (a broker's group join is not measured)
    started = time.perf_counter()
    for i in range(0, n, BATCH):
        await bus.publish(batch[i : i + BATCH])
    published = time.perf_counter() - started
    started, got = time.perf_counter(), 0
    while got < n:
        polled = await sub.poll(BATCH, timeout=1.0)
        offsets: dict[TopicPartition, int] = {}
        for m in polled:
            offsets[TopicPartition(m.topic, m.partition)] = m.offset + 1
        await sub.commit(offsets)
        got += len(polled)
    consumed = time.perf_counter() - started
    await sub.close()
    return n / published, n / consumed


async def executions(bus: EventBus, n: int) -> float:
    limits = UserLimits(rate_limit=10**9, max_running=64, max_queued=n)
    coordinator = CoordinatorConfig(max_running=256, max_queue=n, default_user_limits=limits)
    async with Codeexec(Settings(coordinator=coordinator), sandbox=FakeSandbox(), bus=bus) as cx:
        await cx.wait((await cx.submit("warmup", SPEC)).id, timeout=120)  # groups joined
        started = time.perf_counter()
        ids = [(await cx.submit(f"user{i % 16}", SPEC)).id for i in range(n)]
        for execution_id in ids:
            assert (await cx.wait(execution_id, timeout=600)).status == "succeeded"
        return n / (time.perf_counter() - started)


async def run(n: int, runs: int, broker: TansuBroker) -> None:
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap, session_timeout_ms=6000)
    kinds = {
        "memory_bus": InMemoryEventBus,
        "kafka_bus": lambda: AioKafkaEventBus(settings),
        "kafka_bus_uncompressed": lambda: AioKafkaEventBus(
            dataclasses.replace(settings, compression="none")
        ),
    }
    for name, make in kinds.items():
        bus = make()
        publish, consume = await bus_throughput(bus, n)
        await bus.close()
        print(f"bench: {name}_publish_throughput {publish:.0f} msg/s", flush=True)
        print(f"bench: {name}_consume_throughput {consume:.0f} msg/s", flush=True)
    for name, make in (("memory", kinds["memory_bus"]), ("kafka", kinds["kafka_bus"])):
        bus = make()
        rate = await executions(bus, runs)
        await bus.close()
        print(f"bench: embedded_{name}_bus_executions {rate:.0f} executions/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=50_000, help="messages per bus")
    parser.add_argument("--runs", type=int, default=1_000, help="executions per bus")
    args = parser.parse_args()
    with TansuBroker() as broker:
        asyncio.run(run(args.n, args.runs, broker))


if __name__ == "__main__":
    main()
