"""`codeexec serve`, `codeexec api` and `codeexec role`: the long-running processes.

serve: the API, the web page and every role in one process (any bus and store).
api: the API and web page with no role in the process (roles run elsewhere).
role: the named roles in one process, with /health/live and /health/ready on --health-port.
Each checks its configuration before anything starts: a bad value or a missing adapter
exits 78 (EX_CONFIG) in one line naming the variable or the package."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path

from eventsourcing.persistence import OperationalError

from codeexec.ports.bus import EventBus
from codeexec.runtime import Codeexec, DataDirInUse, StoreUnreadable, check_store, lock_data_dir
from codeexec_server import collector, switch_interval
from codeexec_server.container import Container, provided, shutdown
from codeexec_server.deployment import ALL_ROLES, BUSES, SANDBOXES, STORES, Deployment
from codeexec_server.gateways import check_deployment, make_store_config
from codeexec_server.health_server import HealthServer, crashed
from codeexec_server.settings import ServerSettings

log = logging.getLogger(__name__)

EXIT_SOFTWARE = 70  # a role crashed: a supervisor should restart the process
EXIT_UNAVAILABLE = 69  # the store or the broker cannot be reached
EXIT_DATA_DIR_IN_USE = 73  # EX_CANTCREAT
EXIT_STORE_UNREADABLE = 74  # EX_IOERR: the event store or key store is corrupt or unreadable


def add_deployment_flags(p: argparse.ArgumentParser) -> None:
    """Flags win over the CODEEXEC_* variables of the same name (docs/configuration.md)."""
    p.add_argument("--bus", choices=BUSES, help="CODEEXEC_BUS (default memory)")
    p.add_argument("--kafka-bootstrap", help="CODEEXEC_KAFKA_BOOTSTRAP: host:port[,...]")
    p.add_argument("--store", choices=STORES, help="CODEEXEC_STORE (default sqlite)")
    p.add_argument("--sandbox", choices=SANDBOXES, help="CODEEXEC_SANDBOX (default local)")
    p.add_argument("--worker-id", help="CODEEXEC_WORKER_ID: this process's worker identity")
    p.add_argument("--data-dir", type=Path, help="CODEEXEC_DATA_DIR (default .codeexec)")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="the API, the web page and every role in one process")
    api = sub.add_parser("api", help="the API and web page only; the roles run elsewhere")
    for p in (serve, api):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        add_deployment_flags(p)
    serve.add_argument("--allow-anonymous", action="store_true", help="loopback hosts only")
    serve.add_argument(
        "--allow-private-callbacks",
        action="store_true",
        help="let Judge0 callbacks go to loopback and private addresses",
    )
    role = sub.add_parser(
        "role",
        help="run the named roles in this process",
        description=f"Roles: {', '.join(ALL_ROLES)}.",
    )
    role.add_argument("names", nargs="+", metavar="NAME", help=", ".join(ALL_ROLES))
    role.add_argument("--health-port", type=int, help="serve /health/live and /health/ready")
    role.add_argument("--health-host", default="0.0.0.0", help="default: every interface")
    add_deployment_flags(role)


def deployment_of(args: argparse.Namespace, roles: frozenset[str]) -> Deployment:
    """Raises ConfigError naming the variable (or MissingAdapter naming the package)."""
    deployment = Deployment.from_env(
        bus=args.bus,
        kafka_bootstrap=args.kafka_bootstrap,
        store=args.store,
        sandbox=args.sandbox,
        worker_id=args.worker_id,
        data_dir=args.data_dir,
    )
    deployment.check_split(roles)
    check_deployment(deployment)
    return deployment


def server_settings(args: argparse.Namespace, deployment: Deployment) -> ServerSettings:
    # The CODEEXEC_* variables configure the API as they configure `uvicorn --factory`;
    # flags given on the command line win.
    from_env = ServerSettings.from_env()
    return dataclasses.replace(
        from_env,
        data_dir=deployment.data_dir,
        sandbox=deployment.sandbox,
        host=args.host,
        allow_anonymous=getattr(args, "allow_anonymous", False) or from_env.allow_anonymous,
        allow_private_callbacks=getattr(args, "allow_private_callbacks", False)
        or from_env.allow_private_callbacks,
    )


def _check_private_store(deployment: Deployment) -> int | None:
    """A SQLite store lives in this data dir: refuse one in use or corrupt, in one line."""
    if deployment.store != "sqlite":
        return None
    try:
        lock_data_dir(deployment.data_dir).close()
    except DataDirInUse as error:
        print(f"codeexec: {error}", file=sys.stderr)
        return EXIT_DATA_DIR_IN_USE
    try:
        check_store(deployment.data_dir)
    except StoreUnreadable as error:
        print(f"codeexec: {error}", file=sys.stderr)
        return EXIT_STORE_UNREADABLE
    return None


def _first_admin_key(deployment: Deployment) -> int | None:
    """`serve` on an empty key store prints its first admin key."""
    try:
        keys = make_store_config(deployment).key_store()
    except sqlite3.DatabaseError as error:
        print(f"codeexec: the key store cannot be read: {error}", file=sys.stderr)
        return EXIT_STORE_UNREADABLE
    except OperationalError as error:
        print(f"codeexec: the key store cannot be reached: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        if keys.is_empty():
            key = keys.create("admin", "admin")
            print(f"Created the first admin key (shown once, keep it): {key}", flush=True)
    finally:
        keys.close()
    return None


def serve(args: argparse.Namespace, *, roles: frozenset[str]) -> int:
    """`serve` (every role) and `api` (none): uvicorn until SIGTERM, then exit 0."""
    import uvicorn

    from codeexec_server.app import create_app

    deployment = deployment_of(args, roles)
    collector.tune(os.environ)
    switch_interval.tune(os.environ)
    if (code := _check_private_store(deployment)) is not None:
        return code
    if roles and (code := _first_admin_key(deployment)) is not None:
        return code
    settings = server_settings(args, deployment)
    container = Container(settings=settings, deployment=deployment, roles=roles, serves_api=True)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    what = "serving" if roles else "serving the API (no roles in this process)"
    print(f"codeexec {what} on http://{shown}:{args.port}/ (data in {deployment.data_dir})")
    sys.stdout.flush()
    app = create_app(settings, container)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=5,  # open event streams must not hold a shutdown forever
    )
    server = uvicorn.Server(config)
    # uvicorn stops gracefully on SIGTERM (the runtime stops, the worker drains), then raises
    # the signal again for its previous handler: this one, so a clean stop exits 0.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()
    except SystemExit:  # uvicorn's exit 3 when the app's start-up failed
        error: Exception | None = app.state.startup_error
        if error is not None:
            raise error from None  # `main` exits by its kind: 69 unreachable, 78, 74...
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        print("codeexec: the server did not start (the error is above)", file=sys.stderr)
        return EXIT_SOFTWARE
    return 0


def role(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.names) - set(ALL_ROLES))
    if unknown:
        print(
            f"codeexec: unknown role {', '.join(unknown)}; the roles are {', '.join(ALL_ROLES)}",
            file=sys.stderr,
        )
        return 2
    roles = frozenset(args.names)
    deployment = deployment_of(args, roles)
    collector.tune(os.environ)
    switch_interval.tune(os.environ)
    if (code := _check_private_store(deployment)) is not None:
        return code
    settings = ServerSettings(data_dir=deployment.data_dir, sandbox=deployment.sandbox)
    return asyncio.run(run_roles(settings, deployment, roles, args.health_host, args.health_port))


async def run_roles(
    settings: ServerSettings,
    deployment: Deployment,
    roles: frozenset[str],
    health_host: str,
    health_port: int | None,
) -> int:
    """Run until SIGTERM or SIGINT (exit 0, the worker drained) or a role crashes (70)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    container = Container(settings=settings, deployment=deployment, roles=roles, serves_api=False)
    runtime: Codeexec | None = None
    bus: EventBus | None = None
    health = None
    if health_port is not None:  # answers from the start: live, and not ready until started
        health = HealthServer(lambda: runtime, lambda: bus, health_host, health_port)
        await health.start()
    code = 0
    try:
        started: Codeexec = await provided(container.runtime())
        bus = await provided(container.gateways.bus())
        runtime = started
        names = ", ".join(r for r in ALL_ROLES if r in roles)
        print(f"codeexec running {names} (worker drains on SIGTERM)", flush=True)
        while not stopping.is_set():
            broken = crashed(started)
            if broken:
                log.critical("stopping: %s", "; ".join(f"{k} {v}" for k, v in broken.items()))
                code = EXIT_SOFTWARE
                break
            try:
                async with asyncio.timeout(1.0):
                    await stopping.wait()
            except TimeoutError:
                pass
    finally:
        await shutdown(container)
        if health is not None:
            await health.close()
    return code
