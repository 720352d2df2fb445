"""A MongoDB wire-protocol server (nx-27017) for the adapter's tests, started once per session
on a free loopback port; each test gets a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from codeexec_mongo.test_server import TestMongoServer


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestMongoServer]:
    with TestMongoServer(tmp_path_factory.mktemp("nx-27017")) as server:
        yield server


@pytest.fixture
def mongo_env(mongo_server: TestMongoServer) -> dict[str, str]:
    """eventsourcing's environment for a fresh database on the test server."""
    return {
        "PERSISTENCE_MODULE": "codeexec_mongo.persistence",
        "MONGO_URL": mongo_server.url,
        "MONGO_DB": "t" + uuid.uuid4().hex[:16],
    }
