"""eventsourcing's own recorder and factory contract test cases, on the Mongo recorders."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    InfrastructureFactoryTestCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment
from mongo_fixtures import mongo_env_fixture, mongo_server_fixture  # noqa: F401  (fixtures)

from codeexec_mongo import (
    MongoAggregateRecorder,
    MongoApplicationRecorder,
    MongoFactory,
    MongoProcessRecorder,
    MongoTrackingRecorder,
)


class _OnTestServer:
    """Each test makes its factory on a fresh database; the fixture closes them."""

    factories: list[MongoFactory]
    env: Any

    @pytest.fixture(autouse=True)
    def _server(self, mongo_env: dict[str, str]) -> Any:
        self.mongo_env = mongo_env
        self.factories = []
        yield
        for factory in self.factories:
            factory.close()

    def factory(self) -> MongoFactory:
        factory = MongoFactory(Environment(env=self.mongo_env))
        self.factories.append(factory)
        return factory


class TestMongoAggregateRecorder(_OnTestServer, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.factory().aggregate_recorder("snapshots")


class TestMongoApplicationRecorder(_OnTestServer, ApplicationRecorderTestCase):
    def create_recorder(self) -> ApplicationRecorder:
        return self.factory().application_recorder()


class TestMongoTrackingRecorder(_OnTestServer, TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return self.factory().tracking_recorder()


class TestMongoProcessRecorder(_OnTestServer, ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return self.factory().process_recorder()


class _TrackingSubclass(MongoTrackingRecorder):
    pass


class TestMongoFactory(InfrastructureFactoryTestCase[MongoFactory]):
    @pytest.fixture(autouse=True)
    def _server(self, mongo_env: dict[str, str]) -> None:
        self.env = Environment("TestCase", env=mongo_env)

    def setUp(self) -> None:  # the env comes from the fixture, which runs before setUp
        super().setUp()

    def expected_factory_class(self) -> type[MongoFactory]:
        return MongoFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return MongoAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return MongoApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return MongoTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return _TrackingSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return MongoProcessRecorder


def test_the_factory_is_found_by_its_module(mongo_env: dict[str, str]) -> None:
    factory = InfrastructureFactory.construct(Environment(env=mongo_env))
    try:
        assert isinstance(factory, MongoFactory)
    finally:
        factory.close()
