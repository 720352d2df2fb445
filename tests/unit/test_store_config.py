"""CODEEXEC_STORE picks the event store's persistence module; an exported one is honoured."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeexec.service.store_config import StoreConfigError, store_config

PG = {"POSTGRES_DBNAME": "cx", "POSTGRES_HOST": "db.internal", "POSTGRES_PASSWORD": "s3cret"}


def test_without_settings_memory_or_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    assert store_config(environ={}).env == {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    config = store_config(data_dir=tmp_path, environ={})
    assert config.kind == "sqlite"
    assert config.env["PERSISTENCE_MODULE"] == "codeexec.adapters.sqlite_store"
    assert config.env["SQLITE_DBNAME"] == str(tmp_path / "events.sqlite3")


def test_postgres_uses_eventsourcings_module_with_group_commit_and_its_variables() -> None:
    config = store_config(environ={"CODEEXEC_STORE": "postgres", **PG})
    assert config.kind == "postgres"
    assert config.env["PERSISTENCE_MODULE"] == "codeexec.adapters.postgres_store"
    assert config.env["POSTGRES_HOST"] == "db.internal"
    assert config.env["POSTGRES_PORT"] == "5432"
    assert config.postgres is not None and config.postgres.password == "s3cret"


def test_an_exported_persistence_module_is_honoured(tmp_path: Path) -> None:
    environ = {"PERSISTENCE_MODULE": "codeexec_mongo.store", "CODEEXEC_STORE": "sqlite"}
    config = store_config(data_dir=tmp_path, environ=environ)
    assert config.env == {"PERSISTENCE_MODULE": "codeexec_mongo.store"}
    assert config.kind == "sqlite"  # read model and keys stay in the data dir
    inferred = store_config(environ={"PERSISTENCE_MODULE": "eventsourcing.postgres", **PG})
    assert inferred.kind == "postgres"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CODEEXEC_STORE": "oracle"}, "CODEEXEC_STORE must be one of memory, sqlite, postgres"),
        ({"CODEEXEC_STORE": "sqlite"}, "needs a data dir"),
        ({"CODEEXEC_STORE": "postgres"}, "needs POSTGRES_DBNAME and POSTGRES_HOST"),
        ({"CODEEXEC_STORE": "postgres", **PG, "POSTGRES_PORT": "x"}, "POSTGRES_PORT"),
    ],
)
def test_bad_store_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(StoreConfigError, match=message):
        store_config(environ=environ)


def test_each_store_opens_its_read_model_and_key_store(tmp_path: Path) -> None:
    from codeexec.adapters.memory_read_model import InMemoryExecutionReadModel
    from codeexec.adapters.sql_key_store import SQLiteKeyStore
    from codeexec.adapters.sqlite_read_model import SQLiteExecutionReadModel

    assert isinstance(store_config(environ={}).read_model(), InMemoryExecutionReadModel)
    with pytest.raises(StoreConfigError, match="API keys need a data dir"):
        store_config(environ={}).key_store()
    config = store_config("sqlite", tmp_path, environ={})
    model, keys = config.read_model(), config.key_store()
    assert isinstance(model, SQLiteExecutionReadModel)
    assert isinstance(keys, SQLiteKeyStore)
    assert {p.name for p in tmp_path.iterdir()} >= {"read_model.sqlite3", "keys.sqlite3"}
    model.close()
    keys.close()


def test_the_runtime_settings_honour_an_exported_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codeexec import Settings

    assert Settings(data_dir=tmp_path).store_env()["SQLITE_SYNCHRONOUS"] == "normal"
    monkeypatch.setenv("PERSISTENCE_MODULE", "eventsourcing.sqlite")
    assert Settings(data_dir=tmp_path).store_env() == {"PERSISTENCE_MODULE": "eventsourcing.sqlite"}


def test_aggregates_are_cached_only_when_this_process_is_the_stores_one_writer(
    tmp_path: Path,
) -> None:
    assert store_config("memory", environ={}).aggregate_cache_size > 0
    assert store_config("sqlite", tmp_path, environ={}).aggregate_cache_size > 0
    postgres = {"POSTGRES_DBNAME": "x", "POSTGRES_HOST": "127.0.0.1"}
    assert store_config("postgres", environ=postgres).aggregate_cache_size == 0
    # A module chosen from outside may be shared by others: never cached.
    exported = {"PERSISTENCE_MODULE": "codeexec.adapters.sqlite_store"}
    assert store_config("sqlite", tmp_path, environ=exported).aggregate_cache_size == 0


def test_eventsourcings_other_postgres_settings_pass_through_and_the_pool_is_small() -> None:
    base = {"POSTGRES_DBNAME": "codeexec", "POSTGRES_HOST": "db"}
    env = store_config("postgres", environ=base).env
    assert env["POSTGRES_POOL_SIZE"] == "2"
    given = {**base, "POSTGRES_POOL_SIZE": "7", "POSTGRES_LOCK_TIMEOUT": "3"}
    env = store_config("postgres", environ=given).env
    assert env["POSTGRES_POOL_SIZE"] == "7" and env["POSTGRES_LOCK_TIMEOUT"] == "3"
