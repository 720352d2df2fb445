"""The composition root: the one place where a process's parts are wired.

`Container` holds the server settings, the Deployment (which adapter serves each port), the
Gateways (one provider per port, see `gateways`) and the runtime, which runs the roles this
process was given (every role for `serve`, none for `api`, the named ones for `role`).
Nothing connects at import time. Asking for `runtime()` (and `keystore()`) opens the chosen
adapters and starts the runtime; `shutdown(container)` stops it, then closes them. Never
`init_resources()`: it opens every Resource, those of the adapters not chosen too."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

from dependency_injector import containers, providers

from codeexec.data_dir import private_dir
from codeexec.ports.bus import EventBus
from codeexec.ports.read_model import ExecutionReadModel
from codeexec.ports.sandbox import Sandbox
from codeexec.runtime import Codeexec, Settings
from codeexec.service.store_config import STORES as CORE_STORES
from codeexec.service.store_config import StoreConfig
from codeexec_server.deployment import ALL_ROLES, Deployment
from codeexec_server.gateways import Gateways
from codeexec_server.limits import LimitsDocument, LimitsPolicy, ResourceMaxima
from codeexec_server.settings import ServerSettings


def make_limits_policy(settings: ServerSettings) -> LimitsPolicy:
    private_dir(settings.data_dir)
    default = LimitsDocument(
        max_resource_limits=ResourceMaxima(**settings.max_limits.model_dump()),
        allow_user_priority=settings.allow_user_priority,
    )
    return LimitsPolicy(settings.data_dir / "limits.json", default)


def deployment_for(settings: ServerSettings) -> Deployment:
    """The CODEEXEC_* variables, with the data dir and sandbox the server settings name."""
    return Deployment.from_env(data_dir=settings.data_dir, sandbox=settings.sandbox)


def runtime_settings(
    settings: ServerSettings,
    deployment: Deployment,
    roles: frozenset[str],
    limits: LimitsPolicy,
    serves_api: bool = True,
    store: StoreConfig | None = None,
) -> Settings:
    runtime = Settings(
        live_feed=serves_api,
        data_dir=deployment.data_dir,
        store=deployment.store,
        roles=roles,
        coordinator=limits.document.coordinator_config(),
        store_busy_timeout_s=settings.store_busy_timeout_s,
        shutdown_grace_s=settings.shutdown_grace_s,
    )
    if deployment.worker_id is not None:  # else the runtime's own default
        runtime.worker_id = deployment.worker_id
    if store is not None and deployment.store not in CORE_STORES:
        runtime.store_configured = store  # an adapter's (Mongo): the core cannot make it
    return runtime


async def run_runtime(
    settings: Settings,
    sandbox: Sandbox,
    bus: EventBus,
    read_model: ExecutionReadModel | None,
    limits: LimitsPolicy,
) -> AsyncIterator[Codeexec]:
    runtime = Codeexec(settings, sandbox=sandbox, bus=bus, read_model=read_model)
    await runtime.start()
    try:
        await limits.attach(runtime)  # limits are events in the store from here on
        yield runtime
    finally:
        await runtime.stop()


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=ServerSettings)
    deployment = providers.Dependency(
        instance_of=Deployment, default=providers.Singleton(deployment_for, settings)
    )
    roles = providers.Dependency(instance_of=frozenset, default=frozenset(ALL_ROLES))
    serves_api = providers.Dependency(instance_of=bool, default=True)
    """False for `codeexec role`: nothing in the process follows executions live."""

    gateways = providers.Container(Gateways, deployment=deployment)
    sandbox = gateways.sandbox
    keystore = gateways.key_store

    limits = providers.Singleton(make_limits_policy, settings)
    runtime_settings = providers.Singleton(
        runtime_settings, settings, deployment, roles, limits, serves_api, gateways.store
    )
    runtime = providers.Resource(
        run_runtime, runtime_settings, sandbox, gateways.bus, gateways.read_model, limits
    )


async def provided(value: Any) -> Any:
    """What a provider gave: async Resources (and anything needing one) give an awaitable."""
    return await value if inspect.isawaitable(value) else value


async def shutdown(container: Container) -> None:
    """Stop the runtime first (its consumers drain and leave their groups), then close the
    adapters it used: shutdown_resources() alone may close the bus under running roles."""
    await provided(container.runtime.shutdown())
    await provided(container.shutdown_resources())
