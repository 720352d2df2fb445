"""The role process's health port: live unless a role crashed; ready only once the runtime
started, every role runs and its ports answer, else 503 naming what is not ready."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import httpx
from codeexec_server.health_server import HealthServer

from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.adapters.memory_read_model import InMemoryExecutionReadModel
from codeexec.domain.routing import TopicSpec
from codeexec.ports.read_model import ExecutionView
from codeexec.runtime import Codeexec, Settings


class BrokerGoingDown(InMemoryEventBus):
    """The in-memory bus, with a broker that can stop answering."""

    down = False

    async def declare(self, topics: Sequence[TopicSpec]) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        await super().declare(topics)


class ReadModelGoingDown(InMemoryExecutionReadModel):
    """The in-memory read model, with a database that can stop answering."""

    down = False

    def get(self, execution_id: UUID) -> ExecutionView | None:
        if self.down:
            raise ConnectionError("read model unreachable")
        return super().get(execution_id)


async def get(server: HealthServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{server.bound_port}{path}")


async def test_ready_only_once_started_and_while_the_bus_answers() -> None:
    bus = BrokerGoingDown()
    runtime = Codeexec(Settings(), sandbox=FakeSandbox(), bus=bus)
    current: list[Codeexec] = []
    server = HealthServer(lambda: current[0] if current else None, lambda: bus, "127.0.0.1", 0)
    await server.start()
    try:
        assert (await get(server, "/health/live")).json() == {"status": "ok"}
        starting = await get(server, "/health/ready")
        assert starting.status_code == 503
        assert starting.json()["not_ready"] == {"runtime": "not started"}

        current.append(runtime)
        await runtime.start()
        ready = await get(server, "/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["roles"]["worker"] == "running"

        bus.down = True
        down = await get(server, "/health/ready")
        assert down.status_code == 503
        assert down.json()["not_ready"] == {"bus": "ConnectionError: broker unreachable"}
        assert (await get(server, "/health/live")).status_code == 200  # a restart won't help

        bus.down = False
        await runtime.stop()
        stopped = await get(server, "/health/ready")
        assert stopped.status_code == 503 and "runtime" in stopped.json()["not_ready"]
        assert (await get(server, "/elsewhere")).status_code == 404
    finally:
        await server.close()
        await runtime.stop()


async def test_not_ready_while_the_read_model_does_not_answer() -> None:
    bus, views = InMemoryEventBus(), ReadModelGoingDown()
    runtime = Codeexec(Settings(), sandbox=FakeSandbox(), bus=bus, read_model=views)
    server = HealthServer(lambda: runtime, lambda: bus, "127.0.0.1", 0)
    await server.start()
    try:
        await runtime.start()
        assert (await get(server, "/health/ready")).status_code == 200
        views.down = True
        down = await get(server, "/health/ready")
        assert down.status_code == 503
        assert down.json()["not_ready"] == {"read_model": "ConnectionError: read model unreachable"}
        views.down = False
        assert (await get(server, "/health/ready")).status_code == 200
    finally:
        await server.close()
        await runtime.stop()
