"""A server whose dead letters are real: an extra consumer fails on the user `poison`'s
finished runs until it is fixed. A poison event cannot be made over HTTP, so these apps run
in-process; everything else (routes, auth, store, roles) is the real server's. `live_server`
serves one over HTTP on loopback (uvicorn in a thread) for the browser."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from codeexec_server.app import create_app
from codeexec_server.container import Container
from codeexec_server.keystore import KeyStore
from codeexec_server.limits import LimitsPolicy
from codeexec_server.settings import ServerSettings
from dependency_injector import providers
from fastapi import FastAPI

from codeexec.domain.dead_letter import DeadLetterConfig, RetryPolicy
from codeexec.domain.envelope import DomainEvent
from codeexec.ports.sandbox import Sandbox
from codeexec.runtime import Codeexec, Settings
from codeexec.service.unit_of_work import UnitOfWork
from tests.e2e.uvicorn_app import free_port


class Poisoner:
    """An embedder's consumer that fails on the user `poison`'s finished runs until fixed."""

    group = "poisoner"
    topics: tuple[str, ...] = ("execution_events",)

    def __init__(self) -> None:
        self.fixed = False
        self.handled = 0

    def interested(self, event_type: str) -> bool:
        return event_type == "ExecutionCompleted"

    def recover(self) -> None:
        pass

    def handle(self, event: DomainEvent, uow: UnitOfWork) -> None:
        if event.user_id == "poison" and not self.fixed:
            raise RuntimeError("poisoned: cannot handle this one")
        self.handled += 1


async def poisoned_runtime(
    settings: ServerSettings, sandbox: Sandbox, limits: LimitsPolicy, poisoner: Poisoner
) -> AsyncIterator[Codeexec]:
    runtime = Codeexec(
        Settings(
            data_dir=settings.data_dir,
            coordinator=limits.document.coordinator_config(),
            consumer_max_attempts=2,
            timer_interval_s=0.02,
            dead_letters=DeadLetterConfig(
                default=RetryPolicy(max_retries=1, base_delay_s=0.01, max_delay_s=0.05),
                warning_backlog=1,
                critical_backlog=2,
            ),
        ),
        sandbox=sandbox,
        processes=[poisoner],
    )
    await runtime.start()
    try:
        await limits.attach(runtime)  # as the real container does: limits are events
        yield runtime
    finally:
        await runtime.stop()


def poisoned_app(settings: ServerSettings, poisoner: Poisoner) -> FastAPI:
    container = Container(settings=settings)
    container.runtime.override(
        providers.Resource(
            poisoned_runtime, container.settings, container.sandbox, container.limits, poisoner
        )
    )
    return create_app(settings, container)


@dataclass
class LiveServer:
    url: str
    admin_key: str
    user_key: str
    poison_key: str
    poisoner: Poisoner
    data_dir: Path

    def new_user_key(self, user: str) -> str:
        store = KeyStore.in_data_dir(self.data_dir)
        try:
            return store.create(user)
        finally:
            store.close()

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def live_server(
    data_dir: Path, queue_sample_s: float = 0.25, sandbox: str = "fake"
) -> Iterator[LiveServer]:
    """The poisoned app on a free loopback port until the block ends."""
    store = KeyStore.in_data_dir(data_dir)
    keys = store.create("root", "admin"), store.create("alice"), store.create("poison")
    store.close()
    settings = ServerSettings(data_dir=data_dir, sandbox=sandbox, queue_sample_s=queue_sample_s)
    poisoner = Poisoner()
    port = free_port()
    config = uvicorn.Config(
        poisoned_app(settings, poisoner), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    # Off the main thread uvicorn installs no signal handlers; `should_exit` stops it.
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live server did not start")
            time.sleep(0.05)
        yield LiveServer(url, *keys, poisoner, data_dir)
    finally:
        server.should_exit = True
        thread.join(30)
