"""The embedded Codeexec on the Kafka bus: executions run end to end through a real broker, a
third-party client (kcat, Debian's kafkacat) finds the declared topics and the JSON events
with their headers, and /metrics reports each consumer group's lag from the broker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from codeexec_server import metrics as metrics_routes
from codeexec_server.metrics import Metrics
from fastapi import FastAPI

from codeexec import RunSpec, Settings, SourceFile
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.domain.routing import EXECUTION_EVENTS, TOPICS
from codeexec.ports.bus import H_CORRELATION, H_POSITION, H_SCHEMA, H_TYPE
from codeexec.runtime import Codeexec
from codeexec_kafka import AioKafkaEventBus, KafkaSettings
from codeexec_kafka.tansu import TansuBroker

RUNS = 4
LAG = re.compile(r'^codeexec_consumer_lag\{group="([^"]+)"\} (\S+)$', re.M)


def run_spec(text: str) -> RunSpec:
    return RunSpec(language="fake", files=(SourceFile(name="main", content=text.encode()),))


@pytest.fixture
async def embedded(kafka_settings: KafkaSettings) -> AsyncIterator[tuple[Codeexec, list[UUID]]]:
    bus = AioKafkaEventBus(kafka_settings)
    cx = Codeexec(Settings(), sandbox=FakeSandbox(), bus=bus)
    try:
        async with cx:
            views = [await cx.submit("alice", run_spec(f"out run {n}")) for n in range(RUNS)]
            for view in views:
                assert (await cx.wait(view.id, timeout=60)).state == "completed"
            yield cx, [v.id for v in views]
    finally:
        await bus.close()


def kcat_command(broker: TansuBroker, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """Debian 12's kcat on librdkafka 2.16 (from the confluent-kafka wheel): its own
    librdkafka 2.0.2 cannot parse tansu's ApiVersions v3 answer (tagged fields)."""
    binary = shutil.which("kcat") or shutil.which("kafkacat")
    assert binary, "kafkacat is installed by scripts/install.sh --test"
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    (found,) = libs.glob("librdkafka-*.so.1")
    (tmp_path / "librdkafka.so.1").symlink_to(found)
    env = {**os.environ, "LD_LIBRARY_PATH": f"{tmp_path}:{libs}"}
    return [binary, "-b", broker.bootstrap], env


async def kcat(command: list[str], env: dict[str, str], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_kcat_lists_the_declared_topics_and_reads_json_events_with_headers(
    embedded: tuple[Codeexec, list[UUID]], broker: TansuBroker, tmp_path: Path
) -> None:
    _cx, ids = embedded
    command, env = kcat_command(broker, tmp_path)
    listing = await kcat(command, env, "-L")
    for spec in TOPICS.values():
        assert f'topic "{spec.name}" with {spec.partitions} partitions' in listing

    fmt = "%p\t%o\t%k\t%h\t%s\n"
    out = await kcat(command, env, "-C", "-t", EXECUTION_EVENTS, "-o", "beginning", "-e", "-f", fmt)
    events: dict[str, list[dict[str, object]]] = {}
    for line in out.splitlines():
        partition, offset, key, header_text, payload = line.split("\t")
        headers = dict(h.split("=", 1) for h in header_text.split(","))
        document = json.loads(payload)
        assert key == document["execution_id"]
        assert headers[H_TYPE] == document["type"]
        assert headers[H_SCHEMA] == str(document["schema_version"])
        assert headers[H_CORRELATION] == document["correlation_id"]
        assert re.fullmatch(r"\d+", headers[H_POSITION])
        events.setdefault(key, []).append({"offset": int(offset), "p": partition, **document})
    for execution_id in map(str, ids):
        mine = events[execution_id]
        assert len({e["p"] for e in mine}) == 1  # keyed: one partition, in order
        types = [e["type"] for e in sorted(mine, key=lambda e: int(str(e["offset"])))]
        assert types[0] == "ExecutionRequested" and "ExecutionCompleted" in types
        assert types.index("ExecutionStarted") < types.index("ExecutionCompleted")


async def test_metrics_report_each_groups_lag_from_the_broker(
    embedded: tuple[Codeexec, list[UUID]],
) -> None:
    cx, _ids = embedded
    lag = await cx.backlog()
    assert {"coordinator", "saga", "worker"} <= lag.keys()
    metrics = Metrics()
    metrics.attach(cx)
    app = FastAPI()
    app.state.metrics = metrics
    app.include_router(metrics_routes.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        for _ in range(200):  # every group commits what it handled, soon after
            text = (await c.get("/metrics")).text
            groups = dict(LAG.findall(text))
            if groups and all(float(n) == 0 for n in groups.values()):
                break
            await asyncio.sleep(0.05)
    assert groups.keys() == lag.keys()
    assert all(float(n) == 0 for n in groups.values()), groups
