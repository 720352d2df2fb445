"""E2E: the dead-letter API over real dead letters (tests.e2e.poisoned makes them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from codeexec_server.keystore import KeyStore
from codeexec_server.settings import ServerSettings
from fastapi.testclient import TestClient

from tests.e2e.poisoned import Poisoner, poisoned_app

pytestmark = pytest.mark.e2e
LETTERS = "/api/v1/admin/dead-letters"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Poisoner, dict[str, str]]]:
    store = KeyStore.in_data_dir(tmp_path)
    keys = {"admin": store.create("root", "admin"), "poison": store.create("poison")}
    store.close()
    settings = ServerSettings(data_dir=tmp_path, sandbox="fake")
    poisoner = Poisoner()
    with TestClient(poisoned_app(settings, poisoner)) as client:
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
