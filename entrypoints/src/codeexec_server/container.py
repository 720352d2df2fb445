"""The dependency-injector container: the one place where the server's parts are wired.

Nothing connects at import time; `init_resources()` starts the runtime (all roles in this
process) and opens the key store, `shutdown_resources()` stops them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from dependency_injector import containers, providers

from codeexec.data_dir import private_dir
from codeexec.ports.sandbox import Sandbox
from codeexec.runtime import Codeexec, Settings
from codeexec_server.keystore import KeyStore
from codeexec_server.limits import LimitsDocument, LimitsPolicy, ResourceMaxima
from codeexec_server.sandboxes import make_sandbox
from codeexec_server.settings import ServerSettings


def make_limits_policy(settings: ServerSettings) -> LimitsPolicy:
    private_dir(settings.data_dir)
    default = LimitsDocument(
        max_resource_limits=ResourceMaxima(**settings.max_limits.model_dump()),
        allow_user_priority=settings.allow_user_priority,
    )
    return LimitsPolicy(settings.data_dir / "limits.json", default)


async def run_runtime(
    settings: ServerSettings, sandbox: Sandbox, limits: LimitsPolicy
) -> AsyncIterator[Codeexec]:
    runtime = Codeexec(
        Settings(
            data_dir=settings.data_dir,
            coordinator=limits.document.coordinator_config(),
            store_busy_timeout_s=settings.store_busy_timeout_s,
            shutdown_grace_s=settings.shutdown_grace_s,
        ),
        sandbox=sandbox,
    )
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


def open_keystore(settings: ServerSettings) -> Iterator[KeyStore]:
    store = KeyStore.in_data_dir(settings.data_dir)
    try:
        yield store
    finally:
        store.close()


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=ServerSettings)
    sandbox = providers.Singleton(make_sandbox, settings.provided.sandbox)
    limits = providers.Singleton(make_limits_policy, settings)
    runtime = providers.Resource(run_runtime, settings, sandbox, limits)
    keystore = providers.Resource(open_keystore, settings)
