"""The Gateways container: one provider per port (bus, event store, read model, key store,
sandbox), each chosen by the Deployment through a `providers.Selector`.

An adapter package is imported inside its factory, so only the chosen ones are ever imported
(`import_adapter` turns a missing one into MissingAdapter naming the pip package). Nothing
connects when the container is made: clients open when their provider is first called, and
the Resources close them on `shutdown_resources()`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from dependency_injector import containers, providers

from codeexec.ports.bus import EventBus
from codeexec.ports.key_store import KeyStore
from codeexec.ports.read_model import ExecutionReadModel
from codeexec.service.store_config import StoreConfig, StoreConfigError, store_config
from codeexec_server.deployment import ConfigError, Deployment, Unreachable, import_adapter
from codeexec_server.sandboxes import fake_sandbox, kubernetes_sandbox, local_sandbox


def make_store_config(deployment: Deployment) -> StoreConfig:
    """The event store (and where the read model and keys live). POSTGRES_* are read from
    the environment, as eventsourcing's PostgreSQL module reads them; CODEEXEC_MONGO_* by
    the Mongo distribution, which supplies its own StoreConfig."""
    try:
        if deployment.store == "mongo":
            mongo: Any = import_adapter("codeexec_mongo")
            config: StoreConfig = mongo.store_config(deployment.data_dir, os.environ)
            return config
        return store_config(deployment.store, deployment.data_dir)
    except StoreConfigError as error:
        raise ConfigError(str(error)) from None


def kafka_settings(deployment: Deployment) -> Any:
    """codeexec_kafka's KafkaSettings: the bootstrap chosen, the other CODEEXEC_KAFKA_*."""
    kafka: Any = import_adapter("codeexec_kafka")
    try:
        return kafka.KafkaSettings.from_env(
            {**os.environ, "CODEEXEC_KAFKA_BOOTSTRAP": deployment.kafka_bootstrap or ""}
        )
    except kafka.KafkaSettingsError as error:
        raise ConfigError(str(error)) from None


async def open_kafka_bus(deployment: Deployment) -> AsyncIterator[EventBus]:
    kafka: Any = import_adapter("codeexec_kafka")
    settings = kafka_settings(deployment)
    bus: EventBus = kafka.AioKafkaEventBus(settings)
    try:
        await bus.declare([])  # one metadata request: the brokers answer, or we stop here
    except Exception as error:
        await bus.close()
        raise Unreachable(
            f"the Kafka brokers at CODEEXEC_KAFKA_BOOTSTRAP={settings.bootstrap_servers} "
            f"do not answer: {error}"
        ) from error
    try:
        yield bus
    finally:
        await bus.close()


def check_deployment(deployment: Deployment) -> None:
    """Before anything starts: import the chosen adapters and read their settings, so a
    missing package or a bad value fails at once (ConfigError, MissingAdapter)."""
    deployment.check_adapters()
    make_store_config(deployment)
    if deployment.bus == "kafka":
        kafka_settings(deployment)


def memory_bus() -> EventBus:
    from codeexec.adapters.memory_bus import InMemoryEventBus

    return InMemoryEventBus()


def open_read_model(config: StoreConfig) -> Iterator[ExecutionReadModel]:
    """The shared read model the projections role keeps (a table beside the events)."""
    model = config.read_model()
    try:
        yield model
    finally:
        close = getattr(model, "close", None)  # the port has no close; SQL models do
        if close is not None:
            close()


def open_key_store(config: StoreConfig) -> Iterator[KeyStore]:
    keys = config.key_store()
    try:
        yield keys
    finally:
        keys.close()


class Gateways(containers.DeclarativeContainer):
    deployment = providers.Dependency(instance_of=Deployment)

    store = providers.Singleton(make_store_config, deployment)
    """The event store's configuration: the runtime opens the store itself, in its thread."""

    bus = providers.Selector(
        deployment.provided.bus,
        memory=providers.Singleton(memory_bus),
        kafka=providers.Resource(open_kafka_bus, deployment),
    )
    # Shared stores keep the read model in a table the projections role updates; a store
    # private to one process leaves it to the runtime (folded from that process's events).
    read_model = providers.Selector(
        deployment.provided.store,
        memory=providers.Object(None),
        sqlite=providers.Object(None),
        postgres=providers.Resource(open_read_model, store),
        mongo=providers.Resource(open_read_model, store),
    )
    key_store = providers.Resource(open_key_store, store)
    # The runtime closes the sandbox when it stops.
    sandbox = providers.Selector(
        deployment.provided.sandbox,
        local=providers.Singleton(local_sandbox),
        fake=providers.Singleton(fake_sandbox),
        kubernetes=providers.Singleton(kubernetes_sandbox),
    )
