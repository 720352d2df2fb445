"""`codeexec dlq ...`: list, inspect, retry, discard and archive dead letters (admin key)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from codeexec_server.cli_client import ApiClient
from codeexec_server.cli_replay import Remote, uuid_arg

BASE = "/api/v1/admin/dead-letters"
STATES = ("open", "parked", "retrying", "exhausted", "resolved", "discarded", "archived")


def add_parser(sub: Any, remote: Remote) -> None:
    dlq = sub.add_parser("dlq", help="dead letters (admin key)")
    commands = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = commands.add_parser("list", help="dead letters, newest first")
    listing.add_argument("--state", action="append", default=[], choices=STATES)
    listing.add_argument("--group", help="the consumer group that failed")
    listing.add_argument("--type", dest="event_type", help="the event type")
    listing.add_argument("--limit", type=int, default=100, help="at most this many")
    remote(listing)
    for name, text in (
        ("show", "one dead letter in full, as JSON"),
        ("retry", "republish now to the original topic"),
        ("discard", "discard an open dead letter"),
        ("archive", "archive an open dead letter"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("id", type=uuid_arg)
        if name == "discard":
            command.add_argument("--reason", default="")
        remote(command)


async def run(args: argparse.Namespace, client: ApiClient) -> int:
    command = args.dlq_command
    if command == "list":
        await _list(args, client)
        return 0
    if command == "show":
        print(json.dumps(await client.request("GET", f"{BASE}/{args.id}"), indent=2))
        return 0
    body = {"json": {"reason": args.reason}} if command == "discard" else {}
    letter = await client.request("POST", f"{BASE}/{args.id}/{command}", **body)
    print(f"{letter['id']}\t{letter['state']}")
    return 0


async def _list(args: argparse.Namespace, client: ApiClient) -> None:
    params: list[tuple[str, str]] = [("state", s) for s in args.state]
    params += [(k, v) for k in ("group", "event_type") if (v := getattr(args, k)) is not None]
    shown, cursor = 0, None
    while shown < args.limit:
        page_size = min(100, args.limit - shown)
        query = [*params, ("limit", str(page_size))]
        if cursor is not None:
            query.append(("cursor", cursor))
        page = await client.request("GET", BASE, params=query)
        for x in page["items"]:
            error = x["error"].replace("\n", " ")[:80]
            print(
                f"{x['id']}\t{x['state']}\t{x['group']}\t{x['event_type']}\t"
                f"retries={x['retries']}\t{x['parked_at']}\t{error}"
            )
        shown += len(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
