"""Writes the pages' screenshots under docs/screenshots/: starts a live server on the local
sandbox, drives each page in headless Chromium (Debian's /usr/bin/chromium) and captures
it, so the pictures in the docs always show the pages as they are. Each entry of SHOTS
makes one NAME.png from a page already holding the server's URL and keys.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--only console]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from codeexec_server.keystore import KeyStore
from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for tests.e2e
from tests.e2e.chromium import launch
from tests.e2e.uvicorn_app import start_app

WARM_UP = [
    ("javascript", 'console.log("hello from node");\n'),
    ("bash", "echo hello; exit 3\n"),
    ("python", "import time\ntime.sleep(30)\n"),  # cancelled below, for the history
]
SHOWN = """import sys, time

def main():
    for step in range(1, 6):
        print(f"step {step}: working", flush=True)
        time.sleep(0.25)
    print("warning: cache is cold", file=sys.stderr, flush=True)
    sys.stdout.buffer.write(b"raw bytes: \\xff\\xfe ok\\n")
    print("done")

main()
"""
HELPER = 'def greet(name):\n    return f"Hello, {name}!"\n'


@dataclass(frozen=True)
class Live:
    url: str
    admin_key: str
    user_key: str


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], Live]:
    store = KeyStore.in_data_dir(data_dir)
    admin_key, user_key = store.create("root", "admin"), store.create("alice")
    store.close()
    try:
        process, url = start_app(data_dir, "local")
    except RuntimeError as failure:
        raise SystemExit(str(failure)) from failure
    return process, Live(url, admin_key, user_key)


def warm_up(url: str, key: str) -> None:
    """A few earlier runs, so the history has something to show."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        for language, source in WARM_UP:
            run = c.post("/api/v1/executions", json={"language": language, "source": source})
            run.raise_for_status()
            if "sleep(30)" in source:
                time.sleep(1)
                c.post(f"/api/v1/executions/{run.json()['id']}/cancel").raise_for_status()
            c.get(f"/api/v1/executions/{run.json()['id']}/events").raise_for_status()


def console(page: Page, live: Live) -> None:
    """The console after a run with stdout, stderr and bytes that are not UTF-8, two files
    in tabs, and a few earlier runs in the history."""
    url, key = live.url, live.user_key
    warm_up(url, key)
    page.goto(url + "/")
    page.fill("#apikey", key)
    page.dispatch_event("#apikey", "change")
    page.wait_for_selector("#history tr")
    page.fill("#new-file", "greeting.py")
    page.click("#add-file button")
    page.evaluate("t => document.querySelector('.CodeMirror').CodeMirror.setValue(t)", HELPER)
    page.click("#file-tabs [role=tab] >> nth=0")
    page.evaluate("t => document.querySelector('.CodeMirror').CodeMirror.setValue(t)", SHOWN)
    page.click("[data-testid=run]")
    page.wait_for_selector("#status[data-terminal='true']", timeout=60_000)
    page.wait_for_selector("[data-testid=timeline] [data-event-type=ExecutionCompleted]")
    page.wait_for_function("document.querySelectorAll('#history tr').length >= 4")
    page.evaluate("document.activeElement.blur()")


SHOTS: dict[str, Callable[[Page, Live], None]] = {"console": console}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--only", choices=sorted(SHOTS), action="append")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir:
        process, live = start_server(Path(data_dir))
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)
                for name in args.only or SHOTS:
                    page = browser.new_page(viewport={"width": 1440, "height": 900})
                    SHOTS[name](page, live)
                    page.screenshot(path=str(args.out / f"{name}.png"), full_page=True)
                    page.close()
                    print(f"wrote {args.out / name}.png")
                browser.close()
        finally:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
