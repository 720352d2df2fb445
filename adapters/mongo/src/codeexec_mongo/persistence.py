"""The eventsourcing persistence module for MongoDB (PERSISTENCE_MODULE=codeexec_mongo.persistence).

Configured by MONGO_URL, MONGO_DB and the other MONGO_* variables (`codeexec_mongo.settings`).
One MongoClient per factory, with write concern majority and read concern majority by
default. The application's log is the collections `stored_events`, `stored_commits` and
`stored_positions`; snapshots are `snapshots_*`; a standalone tracking recorder's records
are in `tracking_commits`. Indexes are created when a recorder is made (CREATE_TABLE=false
skips it)."""

from __future__ import annotations

from typing import Any, TypeVar

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    InfrastructureFactoryError,
    ProcessRecorder,
)
from eventsourcing.utils import Environment, resolve_topic, strtobool
from pymongo import MongoClient

from codeexec_mongo.commit_log import CommitLog
from codeexec_mongo.recorders import (
    MongoAggregateRecorder,
    MongoApplicationRecorder,
    MongoProcessRecorder,
    MongoRecorder,
    MongoTrackingRecorder,
)
from codeexec_mongo.settings import MongoSettings, MongoSettingsError

ORIGINATOR_ID_TYPES = ("uuid", "text")
R = TypeVar("R", bound=MongoRecorder)


class MongoFactory(InfrastructureFactory[MongoTrackingRecorder]):
    ORIGINATOR_ID_TYPE = "ORIGINATOR_ID_TYPE"
    CREATE_TABLE = "CREATE_TABLE"

    aggregate_recorder_class = MongoAggregateRecorder
    application_recorder_class = MongoApplicationRecorder
    tracking_recorder_class = MongoTrackingRecorder
    process_recorder_class = MongoProcessRecorder

    def __init__(self, env: Environment | Any) -> None:
        super().__init__(env)
        try:
            self.settings = MongoSettings.from_env(self.env)
        except MongoSettingsError as error:
            raise InfrastructureFactoryError(str(error)) from None
        id_type = (self.env.get(self.ORIGINATOR_ID_TYPE) or "uuid").strip().lower()
        if id_type not in ORIGINATOR_ID_TYPES:
            raise InfrastructureFactoryError(
                f"{self.ORIGINATOR_ID_TYPE} must be one of {', '.join(ORIGINATOR_ID_TYPES)}, "
                f"not {id_type!r}"
            )
        self.uuid_ids = id_type == "uuid"
        write_concern, read_concern = self.settings.concerns()
        # Nothing connects here: pymongo connects in the background, on first use.
        self.client: MongoClient[dict[str, Any]] = MongoClient(
            self.settings.url, appname="codeexec"
        )
        self.db = self.client.get_database(
            self.settings.db, write_concern=write_concern, read_concern=read_concern
        )

    def log(self, name: str) -> CommitLog:
        return CommitLog(
            self.db, name, uuid_ids=self.uuid_ids, gap_timeout_s=self.settings.gap_timeout_s
        )

    def _made(self, recorder: R) -> R:
        if strtobool(self.env.get(self.CREATE_TABLE) or "yes"):
            recorder.create_table()
        return recorder

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        name = "stored" if purpose == "events" else purpose
        return self._made(self.aggregate_recorder_class(self.log(name)))

    def application_recorder(self) -> ApplicationRecorder:
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        cls = resolve_topic(topic) if topic else self.application_recorder_class
        if not (isinstance(cls, type) and issubclass(cls, MongoApplicationRecorder)):
            raise InfrastructureFactoryError(f"{topic} is not a MongoApplicationRecorder")
        return self._made(cls(self.log("stored")))

    def tracking_recorder(
        self, tracking_recorder_class: type[MongoTrackingRecorder] | None = None
    ) -> MongoTrackingRecorder:
        cls = tracking_recorder_class
        if cls is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            cls = resolve_topic(topic) if topic else self.tracking_recorder_class
        if not (isinstance(cls, type) and issubclass(cls, MongoTrackingRecorder)):
            raise InfrastructureFactoryError(f"{cls} is not a MongoTrackingRecorder")
        return self._made(cls(self.log("tracking")))

    def process_recorder(self) -> ProcessRecorder:
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        cls = resolve_topic(topic) if topic else self.process_recorder_class
        if not (isinstance(cls, type) and issubclass(cls, MongoProcessRecorder)):
            raise InfrastructureFactoryError(f"{topic} is not a MongoProcessRecorder")
        return self._made(cls(self.log("stored")))

    def close(self) -> None:
        self.client.close()


Factory = MongoFactory
