"""Storage benchmark: event-store bytes per accepted and per refused 4 MiB submission.

A user limited to 1 run per hour submits ten 4 MiB programs through the real HTTP API of a
server on a SQLite data dir: the first is accepted, the nine others are refused. Prints

    bench: store_bytes_per_accepted_submission N bytes
    bench: store_bytes_per_rejected_submission N bytes

The store's size is its logical size (pages in use, WAL included) read through a separate
SQLite connection, so checkpoint timing and the WAL's high-water mark do not blur it.

    python bench/storage_bench.py [--sandbox fake|local] [--mib 4] [--refused 9]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from codeexec_server.keystore import KeyStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for tests.e2e
from tests.e2e.uvicorn_app import start_app

USER = "mallory"


def report(name: str, value: float, unit: str) -> None:
    print(f"bench: {name} {value:.0f} {unit}", flush=True)


def store_bytes(data_dir: Path) -> int:
    """Bytes of the pages the event store uses (what its files hold once checkpointed)."""
    uri = f"file:{data_dir / 'events.sqlite3'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    return int((pages - free) * size)


def start_server(data_dir: Path, sandbox: str) -> tuple[subprocess.Popen[bytes], str]:
    try:
        return start_app(data_dir, sandbox)
    except RuntimeError as failure:
        raise SystemExit(str(failure)) from failure


def program(sandbox: str, size: int) -> dict[str, str]:
    """A program of `size` bytes that prints one line (the rest is padding it ignores)."""
    if sandbox == "fake":
        head = "out hi\n"
        return {"language": "fake", "source": head + " " * (size - len(head))}
    head = "print('hi')\n#"
    return {"language": "python", "source": head + "x" * (size - len(head))}


def wait_terminal(client: httpx.Client, ids: list[str], timeout: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        views = [client.get(f"/api/v1/executions/{i}").json() for i in ids]
        if all(v["terminal"] for v in views) or time.monotonic() > deadline:
            return [v["status"] for v in views]
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", default="fake", choices=("fake", "local"))
    parser.add_argument("--mib", type=float, default=4.0)
    parser.add_argument("--refused", type=int, default=9)
    args = parser.parse_args()
    # Just under the server's 4 MiB body bound, so the JSON envelope still fits.
    size = int(args.mib * 2**20) - 1024
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        keys = KeyStore.in_data_dir(data_dir)
        admin_key, user_key = keys.create("root", "admin"), keys.create(USER)
        keys.close()
        process, url = start_server(data_dir, args.sandbox)
        try:
            admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"})
            user = httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {user_key}"}, timeout=120
            )
            limits = admin.get("/api/v1/admin/limits").json()
            one_per_hour = {**limits["default_user_limits"], "rate_limit": 1}
            one_per_hour["rate_window_s"] = 3600.0
            limits["user_limits"] = {USER: one_per_hour}
            admin.put("/api/v1/admin/limits", json=limits).raise_for_status()
            body = program(args.sandbox, size)

            empty = store_bytes(data_dir)
            first = user.post("/api/v1/executions", params={"wait": "true"}, json=body)
            if first.status_code != 200 or first.json()["status"] != "succeeded":
                raise SystemExit(f"the accepted submission did not succeed: {first.text[:300]}")
            accepted = store_bytes(data_dir)

            answers = [user.post("/api/v1/executions", json=body) for _ in range(args.refused)]
            recorded = [a.json()["id"] for a in answers if a.status_code == 202]
            outcomes = wait_terminal(user, recorded) if recorded else []
            if any(status != "rejected" for status in outcomes):
                raise SystemExit(f"expected every further submission refused, got {outcomes}")
            refused = store_bytes(data_dir)
            codes = sorted({a.status_code for a in answers})
            print(f"bench: refused submissions answered {codes}", flush=True)
            report("store_bytes_per_accepted_submission", accepted - empty, "bytes")
            report(
                "store_bytes_per_rejected_submission", (refused - accepted) / args.refused, "bytes"
            )
        finally:
            process.terminate()
            process.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
