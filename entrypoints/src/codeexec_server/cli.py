"""The `codeexec` command: serve, run, languages, keys, status, events, replay and dlq.

Exit codes are documented in `cli_run`; any crash exits non-zero (never 0 on failure)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from codeexec.runtime import DataDirInUse, StoreUnreadable, check_store, lock_data_dir
from codeexec_server import cli_dlq, cli_replay
from codeexec_server.cli_client import ApiClient, ServerError
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
from codeexec_server.keystore import KeyStore, Role
from codeexec_server.settings import ServerSettings, default_data_dir, default_sandbox_kind


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codeexec", description="Run untrusted code.")
    sub = parser.add_subparsers(dest="command", required=True)

    def remote(p: argparse.ArgumentParser) -> None:
        p.add_argument("--server", default=os.environ.get("CODEEXEC_SERVER"))
        p.add_argument("--key", default=os.environ.get("CODEEXEC_KEY"))

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, default=default_data_dir())

    serve = sub.add_parser("serve", help="the API, the web page and every role in one process")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--sandbox", choices=("local", "fake"), default=default_sandbox_kind())
    serve.add_argument("--allow-anonymous", action="store_true", help="loopback hosts only")
    serve.add_argument(
        "--allow-private-callbacks",
        action="store_true",
        default=os.environ.get("CODEEXEC_ALLOW_PRIVATE_CALLBACKS", "") == "1",
        help="let Judge0 callbacks go to loopback and private addresses",
    )
    data_dir(serve)

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
    run.add_argument("--sandbox", choices=("local", "fake"), default=default_sandbox_kind())
    remote(run)

    languages = sub.add_parser("languages", help="the languages available")
    languages.add_argument("--sandbox", choices=("local", "fake"), default=default_sandbox_kind())
    remote(languages)

    keys = sub.add_parser("keys", help="manage API keys in the data dir")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="print a new key (shown only once)")
    create.add_argument("--admin", action="store_true")
    create.add_argument("--user", default=None)
    data_dir(create)
    data_dir(keys_sub.add_parser("list", help="key ids, users and roles (never the keys)"))
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    data_dir(revoke)

    status = sub.add_parser("status", help="an execution's status and result, as JSON")
    status.add_argument("id")
    remote(status)
    events = sub.add_parser("events", help="follow an execution's events, one JSON per line")
    events.add_argument("id")
    remote(events)
    cli_replay.add_parser(sub, remote)
    cli_dlq.add_parser(sub, remote)
    return parser


EXIT_DATA_DIR_IN_USE = 73  # EX_CANTCREAT
EXIT_STORE_UNREADABLE = 74  # EX_IOERR: the event store or key store is corrupt or unreadable


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from codeexec_server.app import create_app

    try:  # fail fast with a clear message rather than a startup traceback
        lock_data_dir(args.data_dir).close()
    except DataDirInUse as error:
        print(f"codeexec: {error}", file=sys.stderr)
        return EXIT_DATA_DIR_IN_USE
    try:  # a corrupt store fails here, in one line, not after "serving on"
        check_store(args.data_dir)
    except StoreUnreadable as error:
        print(f"codeexec: {error}", file=sys.stderr)
        return EXIT_STORE_UNREADABLE
    # The CODEEXEC_* variables configure `serve` as they configure `uvicorn --factory`;
    # flags given on the command line win.
    from_env = ServerSettings.from_env()
    settings = dataclasses.replace(
        from_env,
        data_dir=args.data_dir,
        sandbox=args.sandbox,
        host=args.host,
        allow_anonymous=args.allow_anonymous or from_env.allow_anonymous,
        allow_private_callbacks=args.allow_private_callbacks or from_env.allow_private_callbacks,
    )
    try:
        keystore = KeyStore.in_data_dir(settings.data_dir)
        empty = keystore.is_empty()
    except sqlite3.DatabaseError as error:
        path = settings.data_dir / "keys.sqlite3"
        print(f"codeexec: the key store {path} cannot be read: {error}", file=sys.stderr)
        return EXIT_STORE_UNREADABLE
    if empty:
        key = keystore.create("admin", "admin")
        print(f"Created the first admin key (shown once, keep it): {key}", flush=True)
    keystore.close()
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"codeexec serving on http://{shown}:{args.port}/ (data in {settings.data_dir})", flush=True
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=5,  # open event streams must not hold a shutdown forever
    )
    return 0


def _keys(args: argparse.Namespace) -> int:
    store = KeyStore.in_data_dir(args.data_dir)
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
        if args.command == "serve":
            return _serve(args)
        if args.command == "keys":
            return _keys(args)
        if args.command == "run":
            return _run(args)
        if args.command == "languages" and not args.server:
            return asyncio.run(_languages_embedded(args))
        return asyncio.run(_remote(args))
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
