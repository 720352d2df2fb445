"""codeexec-mongo: the event store on MongoDB, as an eventsourcing persistence module."""

from codeexec_mongo.commit_log import CommitLog
from codeexec_mongo.persistence import MongoFactory
from codeexec_mongo.recorders import (
    MongoAggregateRecorder,
    MongoApplicationRecorder,
    MongoProcessRecorder,
    MongoTrackingRecorder,
)
from codeexec_mongo.settings import MongoSettings, MongoSettingsError
from codeexec_mongo.store import MongoStoreConfig, store_config

__all__ = [
    "CommitLog",
    "MongoAggregateRecorder",
    "MongoApplicationRecorder",
    "MongoFactory",
    "MongoProcessRecorder",
    "MongoSettings",
    "MongoSettingsError",
    "MongoStoreConfig",
    "MongoTrackingRecorder",
    "store_config",
]
