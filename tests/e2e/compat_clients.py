"""Run the peers' real clients against a live server: the Judge0 SDK in-process, piston-rspy
and the npm piston-client in their own processes (piston-rspy may crash at interpreter exit,
so its script ends with os._exit)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import judge0

NODE_CLIENT = Path(__file__).parent / "piston_client"

RSPY_SCRIPT = """
import asyncio, json, os, sys
import piston_rspy as p

url, key, request = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

async def main():
    client = p.Client.with_url_and_key(url, key)
    if request["call"] == "runtimes":
        found = await client.fetch_runtimes()
        return [{"language": r.language, "version": r.version, "aliases": r.aliases} for r in found]
    executor = p.Executor(
        language=request["language"], version=request.get("version", "*"),
        files=[p.File(name=request.get("name", ""), content=request["code"])],
        stdin=request.get("stdin", ""), args=request.get("args", []),
    )
    r = await client.execute(executor)
    stage = lambda s: None if s is None else {
        "stdout": s.stdout, "stderr": s.stderr, "output": s.output, "code": s.code,
        "signal": s.signal}
    return {"status": r.status, "language": r.language, "version": r.version,
            "run": stage(r.run), "compile": stage(r.compile)}

try:
    print(json.dumps(asyncio.run(main())), flush=True)
except Exception as error:
    print(json.dumps({"error": repr(error)}), flush=True)
os._exit(0)
"""


def judge0_client(url: str, key: str) -> judge0.Client:
    """The SDK's own client class, pointed at our /judge0 with Judge0's auth header."""
    return judge0.Client(f"{url}/judge0", headers={"X-Auth-Token": key})


def piston_rspy(url: str, key: str, request: dict[str, Any]) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", RSPY_SCRIPT, f"{url}/piston/api/v2", key, json.dumps(request)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def piston_node(server_url: str, request: dict[str, Any]) -> Any:
    """`server_url` as the npm client takes it, e.g. http://user:KEY@127.0.0.1:PORT/piston."""
    done = subprocess.run(
        ["node", str(NODE_CLIENT / "run.mjs"), server_url, json.dumps(request)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)
