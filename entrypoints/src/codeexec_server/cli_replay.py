"""`codeexec replay ...`: start, list, inspect, pause, resume, cancel and watch replay sessions.

Watching draws a progress bar on a terminal and prints one plain line per change when piped;
it exits 0 when the session completed and 1 when it was cancelled."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO
from uuid import UUID

from codeexec_server.cli_client import ApiClient

BASE = "/api/v1/admin/replays"
Remote = Callable[[argparse.ArgumentParser], None]


def uuid_arg(text: str) -> str:
    try:
        return str(UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an id: {text!r}") from None


def iso_time(text: str) -> str:
    """An ISO 8601 time; without a zone it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def add_parser(sub: Any, remote: Remote) -> None:
    replay = sub.add_parser("replay", help="replay sessions (admin key)")
    commands = replay.add_subparsers(dest="replay_command", required=True)
    create = commands.add_parser(
        "create",
        help="start a session re-emitting stored events to a topic; prints its id",
        epilog="exit codes with --follow: 0 completed, 1 cancelled; 2 usage error, "
        "69 server unreachable, 1 refused (not an admin key, conflict)",
    )
    create.add_argument("--type", dest="types", action="append", default=[], metavar="TYPE")
    create.add_argument(
        "--execution", dest="executions", action="append", default=[], type=uuid_arg, metavar="ID"
    )
    create.add_argument("--user", help="only this user's events")
    create.add_argument("--since", type=iso_time, help="ISO time (UTC unless a zone is given)")
    create.add_argument("--until", type=iso_time, help="ISO time, exclusive")
    create.add_argument("--target", default="replay_scratch", help="topic (replay_scratch)")
    create.add_argument("--batch", type=int, default=500, help="events per batch")
    create.add_argument("--rate", type=float, help="events per second (default: unpaced)")
    create.add_argument("--dry-run", action="store_true", help="count, send nothing")
    create.add_argument("--follow", action="store_true", help="watch until it finishes")
    remote(create)
    listing = commands.add_parser("list", help="sessions, newest first")
    listing.add_argument("--state", action="append", default=[])
    remote(listing)
    for name, text in (
        ("show", "a session as JSON"),
        ("pause", "pause a running session"),
        ("resume", "resume a paused session"),
        ("cancel", "cancel a session"),
        ("watch", "follow progress until it finishes (exit 0 completed, 1 cancelled)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("id", type=uuid_arg)
        remote(command)


def create_body(args: argparse.Namespace) -> dict[str, Any]:
    filters: dict[str, Any] = {"event_types": args.types, "execution_ids": args.executions}
    for name in ("user", "since", "until"):
        value = getattr(args, name)
        if value is not None:
            filters["user_id" if name == "user" else name] = value
    body: dict[str, Any] = {
        "filters": filters,
        "target_topic": args.target,
        "batch_size": args.batch,
        "dry_run": args.dry_run,
    }
    if args.rate is not None:
        body["rate_per_s"] = args.rate
    return body


async def run(args: argparse.Namespace, client: ApiClient) -> int:
    command = args.replay_command
    if command == "create":
        session = await client.request("POST", BASE, json=create_body(args))
        if not args.follow:
            print(session["id"])
            return 0
        print(f"replay {session['id']}", flush=True)
        return await watch(client, session["id"])
    if command == "list":
        params = [("state", s) for s in args.state]
        for s in await client.request("GET", BASE, params=params):
            mode = "dry-run" if s["dry_run"] else s["target_topic"]
            print(
                f"{s['id']}\t{s['state']}\t{s['percent']:.1f}%\t"
                f"matched={s['matched']}\tsent={s['sent']}\t{mode}"
            )
        return 0
    if command == "show":
        print(json.dumps(await client.request("GET", f"{BASE}/{args.id}"), indent=2))
        return 0
    if command == "watch":
        return await watch(client, args.id)
    session = await client.request("POST", f"{BASE}/{args.id}/{command}")
    print(f"{session['id']}\t{session['state']}")
    return 0


async def watch(client: ApiClient, session_id: str, interval: float = 0.25) -> int:
    progress = Progress(sys.stdout)
    while True:
        session = await client.request("GET", f"{BASE}/{session_id}")
        progress.update(session)
        if session["finished"]:
            break
        await asyncio.sleep(interval)
    progress.finish(session)
    return 0 if session["state"] == "completed" else 1


class Progress:
    """A redrawn bar on a terminal; otherwise one line whenever the progress changes."""

    WIDTH = 30

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last = ""

    def update(self, s: dict[str, Any]) -> None:
        counts = f"matched {s['matched']}  sent {s['sent']}  failed {s['failed']}"
        if self.tty:
            filled = int(self.WIDTH * s["percent"] / 100)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            line = f"\r[{bar}] {s['percent']:5.1f}%  {s['state']:<9}  {counts}"
            self.out.write(line + "\x1b[K")
            self.out.flush()
            return
        line = f"{s['state']} {s['position']}/{s['total']} ({s['percent']:.1f}%) {counts}"
        if line != self.last:
            print(line, file=self.out, flush=True)
            self.last = line

    def finish(self, s: dict[str, Any]) -> None:
        if self.tty:
            self.out.write("\n")
        if s["dry_run"]:
            summary = f"dry run {s['state']}: {s['matched']} events matched"
        else:
            summary = (
                f"{s['state']}: {s['sent']} of {s['matched']} matched events sent to "
                f"{s['target_topic']} ({s['failed']} failed)"
            )
        print(summary, file=self.out, flush=True)
