"""CODEEXEC_STORE=mongo through the core: the ExecutionStore on the Mongo module, the
composition root's choice, a third-party client reading the stored events, the key store."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from codeexec_server.deployment import ConfigError, Deployment
from codeexec_server.gateways import make_store_config
from eventsourcing.persistence import IntegrityError, Tracking
from mongo_fixtures import mongo_env_fixture, mongo_server_fixture  # noqa: F401  (fixtures)
from pymongo import ASCENDING, MongoClient

from codeexec.domain.aggregate import Cause
from codeexec.domain.events import ExecutionQueued, ExecutionRequested
from codeexec.domain.execution import Execution
from codeexec.domain.model import RunSpec, SourceFile
from codeexec.service.store import ExecutionStore
from codeexec.testing.key_store import KeyStoreContract, NewKeyStore
from codeexec_mongo import MongoFactory, MongoStoreConfig, store_config
from codeexec_mongo.key_store import MongoKeyStore
from codeexec_mongo.test_server import TestMongoServer

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def codeexec_env(mongo_env: dict[str, str]) -> dict[str, str]:
    return {
        "CODEEXEC_MONGO_URL": mongo_env["MONGO_URL"],
        "CODEEXEC_MONGO_DB": mongo_env["MONGO_DB"],
    }


@pytest.fixture
def config(mongo_env: dict[str, str]) -> MongoStoreConfig:
    made = store_config(None, codeexec_env(mongo_env))
    assert isinstance(made, MongoStoreConfig)
    return made


def requested(user: str = "alice", text: str = "out hi") -> Execution:
    execution_id = uuid.uuid4()
    spec = RunSpec(language="fake", files=(SourceFile(name="main", content=text.encode()),))
    return Execution.request(execution_id, user, spec, Cause(NOW, execution_id, None))


def test_one_database_holds_events_read_model_and_keys(config: MongoStoreConfig) -> None:
    from codeexec_mongo.read_model import MongoExecutionReadModel

    store, model, keys = ExecutionStore(config.env), config.read_model(), config.key_store()
    assert isinstance(model, MongoExecutionReadModel) and isinstance(keys, MongoKeyStore)
    execution = requested()
    events = execution.collect_events()
    positions = store.record(events)
    model.apply_batch(list(zip(positions, events, strict=True)), Tracking("projections", 1))
    key = keys.create("alice")
    view = model.get(execution.id)
    assert view is not None and view.seq == positions[0] and model.tracked("projections") == 1
    assert keys.authenticate(key) is not None
    store.close()
    model.close()
    keys.close()


def test_the_composition_root_chooses_the_mongo_module(
    mongo_env: dict[str, str],
    mongo_server: TestMongoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name, value in codeexec_env(mongo_env).items():
        monkeypatch.setenv(name, value)
    chosen = make_store_config(Deployment(store="mongo", data_dir=tmp_path))
    assert chosen.env["PERSISTENCE_MODULE"] == "codeexec_mongo.persistence"
    where = f"{mongo_server.host}:{mongo_server.port}"
    assert chosen.describe() == f"the MongoDB database {mongo_env['MONGO_DB']} on {where}"
    store = ExecutionStore(chosen.env)
    assert isinstance(store.factory, MongoFactory)
    store.close()


def test_a_bad_or_missing_setting_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CODEEXEC_MONGO_URL", raising=False)
    with pytest.raises(ConfigError, match="needs CODEEXEC_MONGO_URL"):
        make_store_config(Deployment(store="mongo", data_dir=tmp_path))
    monkeypatch.setenv("CODEEXEC_MONGO_URL", "mongodb://127.0.0.1:1")
    monkeypatch.setenv("CODEEXEC_MONGO_DB", "codeexec")
    monkeypatch.setenv("CODEEXEC_MONGO_WRITE_CONCERN", "all")
    with pytest.raises(ConfigError, match="CODEEXEC_MONGO_WRITE_CONCERN must be majority"):
        make_store_config(Deployment(store="mongo", data_dir=tmp_path))
    # A shared store: roles may run in processes (and on hosts) of their own.
    Deployment(bus="kafka", kafka_bootstrap="b:9092", store="mongo").check_split(
        frozenset({"worker"})
    )


def test_events_and_tracking_are_recorded_together_and_read_in_order(
    config: MongoStoreConfig,
) -> None:
    store = ExecutionStore(config.env)
    executions = [requested() for _ in range(5)]
    positions: list[int] = []
    for n, execution in enumerate(executions, start=1):
        execution.queue(Cause(NOW, execution.id, None), n)
        positions += store.record(execution.collect_events(), [], Tracking("coordinator/p0", n))
    assert positions == list(range(1, 11))
    assert store.tracked("coordinator/p0") == 5
    read = store.read(1, 100)
    assert [p for p, _ in read] == positions
    assert [type(e) for _, e in read] == [ExecutionRequested, ExecutionQueued] * 5
    again = requested()  # a batch whose tracking was recorded before records nothing
    with pytest.raises(IntegrityError):
        store.record(again.collect_events(), [], Tracking("coordinator/p0", 5))
    assert store.load(Execution, again.id) is None
    assert store.max_position() == 10
    store.close()


def test_plain_pymongo_reads_an_executions_events_in_order_as_json(
    config: MongoStoreConfig, mongo_server: TestMongoServer
) -> None:
    store = ExecutionStore(config.env)
    execution = requested(text="out héllo")
    cause = Cause(NOW, execution.id, None)
    store.record(execution.collect_events())
    execution.queue(cause, 1)
    execution.schedule(cause)
    store.record(execution.collect_events())
    store.record(requested("bob").collect_events())  # another execution between
    store.close()

    # As documented in docs/mongo.md: an event counts once its commit document exists.
    client: MongoClient[dict[str, object]] = MongoClient(mongo_server.url)
    db = client[config.env["MONGO_DB"]]
    events = list(db["stored_events"].find({"o": str(execution.id)}).sort("v", ASCENDING))
    commits = {c["_id"] for c in db["stored_commits"].find({"void": {"$ne": True}})}
    documents = [json.loads(bytes(e["s"])) for e in events if e["c"] in commits]  # type: ignore[call-overload]
    client.close()
    assert [d["type"] for d in documents] == [
        "ExecutionRequested",
        "ExecutionQueued",
        "ExecutionScheduled",
    ]
    assert [d["aggregate_version"] for d in documents] == [1, 2, 3]
    assert {d["execution_id"] for d in documents} == {str(execution.id)}
    assert [e["t"] for e in events] == [f"codeexec:{d['type']}" for d in documents]


async def test_the_embedded_runtime_runs_on_mongo(config: MongoStoreConfig) -> None:
    from codeexec import Codeexec, Settings
    from codeexec.adapters.fake_sandbox import FakeSandbox

    settings = Settings(store_configured=config)
    async with Codeexec(settings, sandbox=FakeSandbox()) as cx:
        spec = RunSpec(language="fake", files=(SourceFile(name="main", content=b"out h\xc3\xa9"),))
        view = await cx.submit("alice", spec)
        done = await cx.wait(view.id, timeout=20)
        assert done.status == "succeeded" and "hé".encode() in done.stdout
    again = ExecutionStore(config.env)
    assert [type(e).__name__ for e in again.events_of(view.id)][-1] == "ExecutionCompleted"
    again.close()


class TestMongoKeyStore(KeyStoreContract):
    @pytest.fixture
    def stores(self) -> Iterator[tuple[list[MongoKeyStore], list[str]]]:
        opened: list[MongoKeyStore] = []
        yield opened, []
        for keys in opened:
            keys.close()

    @pytest.fixture
    def new_key_store(
        self, mongo_env: dict[str, str], stores: tuple[list[MongoKeyStore], list[str]]
    ) -> NewKeyStore:
        opened, dbs = stores

        def new() -> MongoKeyStore:
            dbs.append("k" + uuid.uuid4().hex[:16])
            return reopen()

        def reopen() -> MongoKeyStore:
            env = {**codeexec_env(mongo_env), "CODEEXEC_MONGO_DB": dbs[-1]}
            made = store_config(None, env).key_store()
            assert isinstance(made, MongoKeyStore)
            opened.append(made)
            return made

        self._reopen = reopen
        return new

    @pytest.fixture
    def reopen_key_store(self, new_key_store: NewKeyStore) -> NewKeyStore:
        return self._reopen
