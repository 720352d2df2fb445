"""Mount the peers' APIs on our app and run what they need beside the runtime (the Judge0
callback outbox and its sender)."""

from __future__ import annotations

from uuid import UUID

from fastapi import FastAPI
from starlette.datastructures import State

from codeexec.runtime import Codeexec
from codeexec_server.compat.judge0 import app as judge0_app
from codeexec_server.compat.judge0.callbacks import CallbackSender
from codeexec_server.compat.judge0.catalog import Judge0Config
from codeexec_server.compat.judge0.service import Judge0Service
from codeexec_server.compat.judge0.store import Judge0Store
from codeexec_server.compat.piston import app as piston_app
from codeexec_server.settings import ServerSettings


def mount_compat(app: FastAPI) -> None:
    app.mount("/judge0", judge0_app.build(app.state))
    app.mount("/piston", piston_app.build(app.state))


def start_compat(state: State, runtime: Codeexec) -> None:
    """After the runtime started: open the outbox, resume callbacks left pending."""
    settings: ServerSettings = state.settings
    store = Judge0Store.in_data_dir(settings.data_dir)
    config = Judge0Config.of(state.limits.document)
    service: Judge0Service | None = None

    async def render(token: UUID) -> dict[str, object]:
        assert service is not None
        return await service.callback_body(runtime, token)

    sender = CallbackSender(
        store,
        render,
        allow_private=settings.allow_private_callbacks,
        tries=config.callbacks_max_tries,
        timeout=config.callbacks_timeout,
    )
    service = Judge0Service(store, sender, settings.allow_private_callbacks)
    state.judge0 = service
    sender.resume(runtime)


async def stop_compat(state: State) -> None:
    service: Judge0Service | None = getattr(state, "judge0", None)
    if service is not None:
        await service.callbacks.close()
        service.store.close()
        state.judge0 = None
