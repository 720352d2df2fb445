"""`store_config`: what `CODEEXEC_STORE=mongo` means to the core, from CODEEXEC_MONGO_*.

The composition root (`codeexec_server.gateways`) calls `store_config(data_dir, environ)`
only when Mongo is chosen; the core never imports this package. CODEEXEC_MONGO_URL (a
standard connection string) and CODEEXEC_MONGO_DB are required; CODEEXEC_MONGO_WRITE_CONCERN,
CODEEXEC_MONGO_READ_CONCERN and CODEEXEC_MONGO_GAP_TIMEOUT_S are optional. They become the
persistence module's MONGO_* variables. An exported PERSISTENCE_MODULE still chooses the
event store's module, as eventsourcing documents."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pymongo.uri_parser import parse_uri

from codeexec.service.store_config import PERSISTENCE_MODULE, StoreConfig, StoreConfigError
from codeexec_mongo.settings import MongoSettings, MongoSettingsError

if TYPE_CHECKING:
    from codeexec.ports.execution_queries import ExecutionQueries
    from codeexec.ports.key_store import KeyStore
    from codeexec.ports.read_model import ExecutionReadModel

MODULE = "codeexec_mongo.persistence"


@dataclass(frozen=True)
class MongoStoreConfig(StoreConfig):
    mongo: MongoSettings | None = None

    def describe(self) -> str:
        if self.mongo is None or self.env[PERSISTENCE_MODULE] != MODULE:
            return super().describe()
        hosts = ", ".join(f"{h}:{p}" for h, p in parse_uri(self.mongo.url)["nodelist"])
        return f"the MongoDB database {self.mongo.db} on {hosts}"  # never the credentials

    def read_model(self) -> ExecutionReadModel:
        from codeexec_mongo.read_model import MongoExecutionReadModel

        assert self.mongo is not None
        return MongoExecutionReadModel(self.mongo)

    def queries(self, read_model: ExecutionReadModel) -> ExecutionQueries:
        """The views read on pymongo's asyncio client (another read model: the default)."""
        from codeexec_mongo.queries import MongoExecutionQueries
        from codeexec_mongo.read_model import MongoExecutionReadModel

        if self.mongo is None or not isinstance(read_model, MongoExecutionReadModel):
            return super().queries(read_model)
        return MongoExecutionQueries(self.mongo, read_model.views.name)

    def key_store(self) -> KeyStore:
        from codeexec_mongo.key_store import MongoKeyStore

        assert self.mongo is not None
        return MongoKeyStore(self.mongo)


def store_config(data_dir: Path | None, environ: Mapping[str, str] | None = None) -> StoreConfig:
    """The event store on MongoDB (StoreConfigError naming the variable if one is wrong)."""
    environ = os.environ if environ is None else environ
    try:
        settings = MongoSettings.from_env(environ, prefix="CODEEXEC_")
    except MongoSettingsError as error:
        raise StoreConfigError(str(error)) from None
    module = environ.get(PERSISTENCE_MODULE, "").strip() or MODULE
    env = {PERSISTENCE_MODULE: module, **settings.env()}
    return MongoStoreConfig("mongo", env, data_dir, mongo=settings)
