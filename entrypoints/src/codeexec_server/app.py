"""The ASGI application factory: `create_app(settings)` wires routes to a fresh container."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from codeexec_server import metrics as metrics_routes
from codeexec_server import (
    routes_admin,
    routes_dashboard,
    routes_dead_letters,
    routes_events,
    routes_executions,
    routes_replays,
)
from codeexec_server.compat.mount import mount_compat, start_compat, stop_compat
from codeexec_server.container import Container, provided, shutdown
from codeexec_server.metrics import Metrics, RequestTimer
from codeexec_server.open_requests import OpenRequests
from codeexec_server.problems import BodySizeLimit, install_problem_handlers
from codeexec_server.queue_history import QueueHistory
from codeexec_server.schemas import Problem
from codeexec_server.settings import ServerSettings

STATIC = Path(__file__).parent / "static"


def create_app(
    settings: ServerSettings | None = None, container: Container | None = None
) -> FastAPI:
    """A FastAPI app; the runtime starts in its lifespan, not here."""
    settings = settings or ServerSettings.from_env()
    container = container or Container(settings=settings)
    app_metrics = Metrics()
    queue_history = QueueHistory(settings.queue_sample_s, settings.queue_history_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Each port is opened by asking for it, never by init_resources(), which would open
        # every Resource, the adapters not chosen too.
        try:
            try:
                app.state.keystore = await provided(container.keystore())
                app.state.limits = container.limits()
                runtime = await provided(container.runtime())
            except Exception as error:
                # uvicorn logs it and exits 3; `codeexec serve` and `api` exit by its kind.
                app.state.startup_error = error
                raise
            app.state.runtime = runtime
            app_metrics.attach(runtime)
            start_compat(app.state, runtime)
            queue_history.start(runtime)
            yield
        finally:
            await queue_history.stop()
            await stop_compat(app.state)
            app.state.runtime = None
            await shutdown(container)

    app = FastAPI(
        title="codeexec",
        version="0.1.0",
        description="Run untrusted code with a full audit log and live event streams. "
        "Errors are application/problem+json. Output that is not valid UTF-8 is returned "
        "as base64 with `stdout_encoding: base64` (likewise stderr, compile_output).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.container = container
    app.state.metrics = app_metrics
    app.state.queue_history = queue_history
    app.state.open_requests = open_requests = OpenRequests(settings)
    app_metrics.gauge(
        "codeexec_waiting_submissions",
        "requests waiting for their result (wait=true)",
        lambda: open_requests.waiters.total,
    )
    app_metrics.gauge(
        "codeexec_event_streams", "open event streams", lambda: open_requests.streams.total
    )
    app.state.runtime = None
    app.state.startup_error = None
    install_problem_handlers(app)
    for module in (
        routes_executions,
        routes_events,
        routes_admin,
        routes_dashboard,
        routes_replays,
        routes_dead_letters,
        metrics_routes,
    ):
        app.include_router(module.router)
    app.include_router(routes_admin.health)
    mount_compat(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestTimer, metrics=app_metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html", media_type="text/html")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
            runtime = app.state.runtime
            if runtime is None:
                return schema  # languages are known once the runtime started
            names = sorted({n for x in runtime.language_list for n in (x.name, *x.aliases)})
            components["SubmissionIn"]["properties"]["language"]["enum"] = names
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """For `uvicorn --factory codeexec_server.app:app_from_env`."""
    return create_app(ServerSettings.from_env())
