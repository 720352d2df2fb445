"""E2E: the dead-letter API over real dead letters. A poison event cannot be made over HTTP,
so this app runs in-process with an extra consumer that fails on one user's events until it
is fixed; everything else (routes, auth, store, roles) is the real server's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from codeexec_server.app import create_app
from codeexec_server.container import Container
from codeexec_server.keystore import KeyStore
from codeexec_server.limits import LimitsPolicy
from codeexec_server.settings import ServerSettings
from dependency_injector import providers
from fastapi.testclient import TestClient

from codeexec.domain.dead_letter import DeadLetterConfig, RetryPolicy
from codeexec.domain.envelope import DomainEvent
from codeexec.ports.sandbox import Sandbox
from codeexec.runtime import Codeexec, Settings
from codeexec.service.unit_of_work import UnitOfWork

pytestmark = pytest.mark.e2e
LETTERS = "/api/v1/admin/dead-letters"


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
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Poisoner, dict[str, str]]]:
    store = KeyStore.in_data_dir(tmp_path)
    keys = {"admin": store.create("root", "admin"), "poison": store.create("poison")}
    store.close()
    settings = ServerSettings(data_dir=tmp_path, sandbox="fake")
    container = Container(settings=settings)
    poisoner = Poisoner()
    container.runtime.override(
        providers.Resource(
            poisoned_runtime, container.settings, container.sandbox, container.limits, poisoner
        )
    )
    with TestClient(create_app(settings, container)) as client:
        yield client, poisoner, keys


def eventually(probe: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_admins_inspect_filter_retry_discard_and_archive_dead_letters(
    app: tuple[TestClient, Poisoner, dict[str, str]],
) -> None:
    client, poisoner, keys = app
    user = {"Authorization": f"Bearer {keys['poison']}"}
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    runs = [
        client.post(
            "/api/v1/executions",
            params={"wait": "true"},
            json={"language": "fake", "source": f"out {i}"},
            headers=user,
        ).json()["id"]
        for i in range(2)
    ]

    def exhausted() -> list[dict[str, Any]]:
        items = client.get(LETTERS, params={"state": "exhausted"}, headers=admin).json()["items"]
        return items if len(items) == 2 else []

    newest, oldest = eventually(exhausted)
    assert {newest["execution_id"], oldest["execution_id"]} == set(runs)
    assert newest["parked_at"] >= oldest["parked_at"]
    assert (newest["group"], newest["original_topic"], newest["event_type"]) == (
        "poisoner",
        "execution_events",
        "ExecutionCompleted",
    )
    assert newest["retries"] == 1 and "poisoned" in newest["error"]

    detail = client.get(newest["links"]["self"], headers=admin).json()
    assert detail["payload_encoding"] == "utf-8"
    assert newest["execution_id"] in detail["payload"]
    assert detail["headers"]["event-type"] == "ExecutionCompleted"
    assert detail["attempts"] == 2 and detail["first_error"].startswith("RuntimeError")

    ready = client.get("/health/ready").json()
    assert ready["status"] == "degraded"
    assert ready["checks"]["dead_letters"]["open"] == 2
    assert ready["checks"]["dead_letters"]["level"] == "critical"
    assert "codeexec_dead_letters_level 2.0" in client.get("/metrics").text

    first = client.get(LETTERS, params={"limit": 1}, headers=admin).json()
    second = client.get(
        LETTERS, params={"limit": 1, "cursor": first["next_cursor"]}, headers=admin
    ).json()
    assert [x["id"] for x in first["items"] + second["items"]] == [newest["id"], oldest["id"]]
    assert second["next_cursor"] is None
    other_group = client.get(LETTERS, params={"group": "billing"}, headers=admin).json()
    assert other_group["items"] == []

    poisoner.fixed = True
    retried = client.post(newest["links"]["retry"], headers=admin)
    assert (retried.status_code, retried.json()["state"]) == (202, "retrying")
    resolved = eventually(
        lambda: client.get(newest["links"]["self"], headers=admin).json()["state"] == "resolved"
    )
    assert resolved and poisoner.handled >= 1
    assert client.post(newest["links"]["retry"], headers=admin).status_code == 409
    assert client.post(newest["links"]["archive"], headers=admin).status_code == 409

    discarded = client.post(oldest["links"]["discard"], json={"reason": "obsolete"}, headers=admin)
    assert (discarded.status_code, discarded.json()["state"]) == (200, "discarded")
    assert client.post(oldest["links"]["archive"], headers=admin).status_code == 409
    assert client.post(oldest["links"]["discard"], headers=admin).status_code == 409

    ready = client.get("/health/ready").json()
    assert (ready["status"], ready["checks"]["dead_letters"]["open"]) == ("ok", 0)
    open_now = client.get(LETTERS, params={"state": "open"}, headers=admin).json()
    assert open_now["items"] == []
