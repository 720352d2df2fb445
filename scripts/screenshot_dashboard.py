"""Screenshot of the operators' dashboard: docs/screenshots/dashboard.png, from a live server.

    .venv/bin/python scripts/screenshot_dashboard.py [--out PATH] [--width PX]

Starts the server of the browser tests (tests/e2e/poisoned.py: the real app, plus one
consumer that fails on the user `poison`'s runs so the dead letters are real ones) on a
temporary data dir, with the real bubblewrap sandbox. It then makes about a
minute of activity: waves of Python and C programs from four users against a running cap of
3 (so a queue builds and drains), every kind of ending (success, exit code, time limit,
compile error, cancel, rejection on a user's queue cap), two dead letters and replay
sessions in each state. Then it opens /dashboard in Chromium and takes the picture while
the last wave still runs."""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.e2e.chromium import launch  # noqa: E402
from tests.e2e.poisoned import LiveServer, live_server  # noqa: E402

SLEEPY = "import time\ntime.sleep({s})\nprint('done after {s} s')"
SPINS = "while True:\n    pass"
BROKEN_C = "int main(void) { return missing; }"


def submit(live: LiveServer, key: str, source: str, **extra: Any) -> str:
    body = {"language": "python", "source": source, **extra}
    with live.client(key) as client:
        response = client.post("/api/v1/executions", json=body)
    return str(response.json().get("id", ""))


def set_limits(live: LiveServer) -> None:
    with live.client(live.admin_key) as admin:
        doc = admin.get("/api/v1/admin/limits").json()
        doc["max_running"] = 3
        burst = dict(doc["default_user_limits"], max_running=1, max_queued=1)
        doc["user_limits"] = {"dave": burst}
        admin.put("/api/v1/admin/limits", json=doc).raise_for_status()


def waves(live: LiveServer, keys: dict[str, str], rounds: int, pause_s: float) -> None:
    """Runs arriving faster than three at a time can finish, then a lull."""
    pick = random.Random(14)
    for wave in range(rounds):
        for _ in range(pick.randint(3, 7)):
            user = pick.choice(["alice", "bob", "carol"])
            submit(live, keys[user], SLEEPY.format(s=round(pick.uniform(0.5, 3.5), 1)))
        if wave % 2 == 0:
            submit(live, keys["bob"], "import sys\nprint('bad input')\nsys.exit(3)")
            submit(live, keys["carol"], SPINS, limits={"wall_time_s": 1, "cpu_time_s": 1})
        time.sleep(pause_s * (1.6 if wave % 3 == 2 else 1))


def endings(live: LiveServer, keys: dict[str, str]) -> None:
    """A compile error, a cancelled run, a user over their queue cap, two dead letters."""
    submit(live, keys["alice"], BROKEN_C, language="c")
    hanging = submit(live, keys["bob"], SLEEPY.format(s=30))
    for _ in range(4):
        submit(live, keys["dave"], SLEEPY.format(s=2))
    for n in range(2):
        submit(live, live.poison_key, f"print('poison {n}')")
    time.sleep(2)
    with live.client(keys["bob"]) as bob:
        bob.post(f"/api/v1/executions/{hanging}/cancel")


def replays(live: LiveServer) -> None:
    url = "/api/v1/admin/replays"
    with live.client(live.admin_key) as admin:
        admin.post(url, json={"dry_run": True}).raise_for_status()
        cancelled = admin.post(url, json={"rate_per_s": 1, "batch_size": 1}).json()
        admin.post(cancelled["links"]["cancel"])
        paused = admin.post(
            url, json={"rate_per_s": 5, "batch_size": 5, "filters": {"user_id": "alice"}}
        ).json()
        time.sleep(3)
        admin.post(paused["links"]["pause"])
        admin.post(
            url,
            json={
                "rate_per_s": 20,
                "batch_size": 10,
                "filters": {"event_types": ["ExecutionRequested", "ExecutionCompleted"]},
            },
        )


def wait_for_letters(live: LiveServer, count: int) -> None:
    with live.client(live.admin_key) as admin:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            page = admin.get("/api/v1/admin/dead-letters", params={"state": "exhausted"}).json()
            if len(page["items"]) >= count:
                return
            time.sleep(0.2)
    raise RuntimeError("the dead letters did not appear")


def shoot(live: LiveServer, out: Path, width: int) -> None:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": width, "height": 900}, device_scale_factor=1)
        page.goto(live.url + "/dashboard")
        page.fill("#adminkey", live.admin_key)
        page.press("#adminkey", "Enter")
        page.wait_for_selector("#connection[data-state='ok']")
        page.wait_for_selector("#replays li")
        page.wait_for_timeout(2500)  # one more poll, so every panel is current
        page.evaluate("document.activeElement.blur()")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/screenshots/dashboard.png")
    parser.add_argument("--width", type=int, default=1280, help="of the browser window, px")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as data,
        live_server(Path(data), queue_sample_s=0.5, sandbox="local") as live,
    ):
        keys = {u: live.new_user_key(u) for u in ("alice", "bob", "carol", "dave")}
        set_limits(live)
        endings_later = threading.Timer(20, endings, (live, keys))
        endings_later.start()
        waves(live, keys, rounds=12, pause_s=3.0)
        endings_later.join()
        wait_for_letters(live, 2)
        replays(live)
        for n in range(6):  # still queued and running when the picture is taken
            submit(live, keys[("alice", "bob", "carol")[n % 3]], SLEEPY.format(s=8 + n))
        shoot(live, args.out, args.width)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
