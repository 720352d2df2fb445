"""Fixtures of the Mongo adapter's tests (imported by each test module: a second conftest module
beside the Kafka adapter's would collide in mypy): a MongoDB wire-protocol server (nx-27017),
started once per session on a free loopback port; each test gets a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from codeexec_mongo.test_server import TestMongoServer


@pytest.fixture(scope="session", name="mongo_server")
def mongo_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestMongoServer]:
    with TestMongoServer(tmp_path_factory.mktemp("nx-27017")) as server:
        yield server


@pytest.fixture(name="mongo_env")
def mongo_env_fixture(mongo_server: TestMongoServer) -> dict[str, str]:
    """eventsourcing's environment for a fresh database on the test server."""
    return {
        "PERSISTENCE_MODULE": "codeexec_mongo.persistence",
        "MONGO_URL": mongo_server.url,
        "MONGO_DB": "t" + uuid.uuid4().hex[:16],
    }
