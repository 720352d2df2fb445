"""Writes docs/screenshots/console.png: starts a live server on the local sandbox, drives the
console in headless Chromium (Debian's /usr/bin/chromium) and captures it, so the picture
in the docs always shows the page as it is.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from codeexec_server.keystore import KeyStore
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    store = KeyStore.in_data_dir(data_dir)
    key = store.create("alice")
    store.close()
    port = free_port()
    env = {**os.environ, "CODEEXEC_DATA_DIR": str(data_dir), "CODEEXEC_SANDBOX": "local"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "codeexec_server.app:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                return process, url, key
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not become ready in 30 s")


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


def drive(page: Page, url: str, key: str) -> None:
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
    page.wait_for_function("document.querySelectorAll('#history tr').length >= 4")
    page.evaluate("document.activeElement.blur()")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir:
        process, url, key = start_server(Path(data_dir))
        try:
            warm_up(url, key)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                drive(page, url, key)
                page.screenshot(path=str(args.out / "console.png"), full_page=True)
                browser.close()
        finally:
            process.terminate()
            process.wait(10)
    print(f"wrote {args.out / 'console.png'}")


if __name__ == "__main__":
    main()
