"""The `codeexec` command: serve, run, languages, keys, status, events, replay, dlq, kubernetes.

Exit codes are documented in `cli_run`; any crash exits non-zero (never 0 on failure)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from eventsourcing.persistence import OperationalError

from codeexec.runtime import DataDirInUse, StoreUnreadable
from codeexec_server import cli_dlq, cli_kubernetes, cli_processes, cli_replay
from codeexec_server.cli_client import ApiClient, ServerError
from codeexec_server.cli_processes import EXIT_DATA_DIR_IN_USE, EXIT_STORE_UNREADABLE
from codeexec_server.cli_run import (
    EXIT_CODES,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Display,
    UsageError,
    exit_code_for,
    run_embedded,
    run_remote,
)
from codeexec_server.deployment import (
    ALL_ROLES,
    EX_CONFIG,
    SANDBOXES,
    STORES,
    ConfigError,
    Deployment,
    Unreachable,
)
from codeexec_server.gateways import make_store_config
from codeexec_server.keystore import Role
from codeexec_server.settings import default_data_dir, default_sandbox_kind

ALL, NONE = frozenset(ALL_ROLES), frozenset[str]()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codeexec", description="Run untrusted code.")
    sub = parser.add_subparsers(dest="command", required=True)

    def remote(p: argparse.ArgumentParser) -> None:
        p.add_argument("--server", default=os.environ.get("CODEEXEC_SERVER"))
        p.add_argument("--key", default=os.environ.get("CODEEXEC_KEY"))

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, default=default_data_dir())

    cli_processes.add_parsers(sub)

    run = sub.add_parser(
        "run",
        help="run a file with live output; exits with its exit code",
        epilog="exit codes: the program's own; 128+N killed by signal N; 124 time limit; "
        "125 memory limit; 126 output limit; 127 compilation error; 130 cancelled; "
        "75 rejected (rate limit, storage quota or full queue); 70 internal error; "
        "69 server unreachable; 2 usage error",
    )
    run.add_argument("file", type=Path)
    run.add_argument("--language")
    run.add_argument("--stdin", type=Path, help="a file to feed to the program's stdin")
    run.add_argument("--sandbox", choices=SANDBOXES, default=default_sandbox_kind())
    remote(run)

    languages = sub.add_parser("languages", help="the languages available")
    languages.add_argument("--sandbox", choices=SANDBOXES, default=default_sandbox_kind())
    remote(languages)

    keys = sub.add_parser(
        "keys", help="manage API keys in the configured store (CODEEXEC_STORE, POSTGRES_*)"
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="print a new key (shown only once)")
    create.add_argument("--admin", action="store_true")
    create.add_argument("--user", default=None)
    listing = keys_sub.add_parser("list", help="key ids, users and roles (never the keys)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    for p in (create, listing, revoke):
        data_dir(p)
        p.add_argument("--store", choices=STORES, help="CODEEXEC_STORE (default sqlite)")

    status = sub.add_parser("status", help="an execution's status and result, as JSON")
    status.add_argument("id")
    remote(status)
    events = sub.add_parser("events", help="follow an execution's events, one JSON per line")
    events.add_argument("id")
    remote(events)
    cli_replay.add_parser(sub, remote)
    cli_dlq.add_parser(sub, remote)
    cli_kubernetes.add_parser(sub)
    return parser


def _keys(args: argparse.Namespace) -> int:
    deployment = Deployment.from_env(store=args.store, data_dir=args.data_dir)
    try:
        store = make_store_config(deployment).key_store()
    except sqlite3.DatabaseError as error:
        print(f"codeexec: the key store cannot be read: {error}", file=sys.stderr)
        return EXIT_STORE_UNREADABLE
    try:
        if args.keys_command == "create":
            role: Role = "admin" if args.admin else "user"
            print(store.create(args.user or ("admin" if args.admin else "user"), role))
        elif args.keys_command == "list":
            for record in store.list():
                state = "revoked" if record.revoked_at else "active"
                print(f"{record.key_id}\t{record.user_id}\t{record.role}\t{state}")
        elif not store.revoke(args.key_id):
            print(f"codeexec: no active key {args.key_id}", file=sys.stderr)
            return 1
        return 0
    finally:
        store.close()


async def _remote(args: argparse.Namespace) -> int:
    if not args.server:
        raise UsageError(f"{args.command} needs --server (or CODEEXEC_SERVER)")
    async with ApiClient(args.server, args.key) as client:
        if args.command in ("replay", "dlq"):
            command = cli_replay.run if args.command == "replay" else cli_dlq.run
            try:
                return await command(args, client)
            except ServerError as error:
                if error.status == 422:  # the server refused the arguments
                    raise UsageError(str(error)) from None
                raise
        if args.command == "status":
            print(
                json.dumps(await client.request("GET", f"/api/v1/executions/{args.id}"), indent=2)
            )
        elif args.command == "languages":
            for lang in await client.request("GET", "/api/v1/languages"):
                print(f"{lang['name']}\t{lang['version']}")
        else:
            async for event in client.events(args.id):
                print(json.dumps({"id": event.id, "event": event.event, **event.data}), flush=True)
    return 0


async def _languages_embedded(args: argparse.Namespace) -> int:
    from codeexec_server.sandboxes import make_sandbox

    sandbox = make_sandbox(args.sandbox)
    for lang in await sandbox.languages():
        print(f"{lang.name}\t{lang.version}")
    await sandbox.close()
    return 0


def _run(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise UsageError(f"no such file: {args.file}")
    if args.stdin is not None and not args.stdin.is_file():
        raise UsageError(f"no such file: {args.stdin}")
    source = args.file.read_bytes()
    stdin = args.stdin.read_bytes() if args.stdin else b""
    return asyncio.run(_run_async(args, source, stdin))


async def _run_async(args: argparse.Namespace, source: bytes, stdin: bytes) -> int:
    display = Display()
    result: dict[str, Any]
    if args.server:
        try:
            result = await run_remote(
                args.file, source, args.language, stdin, args.server, args.key, display
            )
        except ServerError as error:
            if error.status != 429:
                raise
            # Refused on admission (rate limit, storage quota): what `rejected` exits with.
            print(f"codeexec: rejected: {error}", file=sys.stderr)
            return EXIT_CODES["rejected"]
    else:
        result = await run_embedded(args.file, source, args.language, stdin, args.sandbox, display)
    display.final(result)
    return exit_code_for(result["status"], result.get("exit_code"), result.get("signal"))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="codeexec: %(message)s")
    args = _parser().parse_args(argv)
    try:
        if args.command in ("serve", "api"):
            return cli_processes.serve(args, roles=ALL if args.command == "serve" else NONE)
        if args.command == "role":
            return cli_processes.role(args)
        if args.command == "keys":
            return _keys(args)
        if args.command == "run":
            return _run(args)
        if args.command == "kubernetes":
            return cli_kubernetes.run(args)
        if args.command == "languages" and not args.server:
            return asyncio.run(_languages_embedded(args))
        return asyncio.run(_remote(args))
    except ConfigError as error:
        print(f"codeexec: {error}", file=sys.stderr)
        return EX_CONFIG
    except DataDirInUse as error:
        print(f"codeexec: {error}", file=sys.stderr)
        return EXIT_DATA_DIR_IN_USE
    except StoreUnreadable as error:
        print(f"codeexec: {error}", file=sys.stderr)
        return EXIT_STORE_UNREADABLE
    except OperationalError as error:  # the store did not answer (down, unreachable)
        print(f"codeexec: the store cannot be reached: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except Unreachable as error:
        print(f"codeexec: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except UsageError as error:
        print(f"codeexec: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ServerError as error:
        print(f"codeexec: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE if error.status is None else 1
    except KeyboardInterrupt:
        return 130
    except ValueError as error:
        print(f"codeexec: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
