"""Web console benchmark: what the page costs to load and how fast it shows a run.

Starts a server (uvicorn) on the real local sandbox and drives the console in headless
Debian Chromium. Prints `bench: NAME VALUE UNIT` lines: bytes the page loads, time until it
is ready, time from a click on Run to the first output and to the final status, and how
long after the run's recorded end (`finished_at`, same clock) the page shows it: for a
hello world and for a program printing LINES lines with pauses (about a hundred output
events), which shows whether drawing the output and the timeline keeps up.

    python bench/console_bench.py [--lines 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from codeexec_server.keystore import KeyStore
from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for tests.e2e
from tests.e2e.chromium import launch
from tests.e2e.uvicorn_app import start_app

# The pause lets each line leave the sandbox as an output event of its own.
FLOOD = "import time\nfor i in range({n}):\n    print(i, flush=True)\n    time.sleep(0.002)\n"


def report(name: str, value: float, unit: str) -> None:
    print(f"bench: {name} {value:.1f} {unit}", flush=True)


def serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    store = KeyStore.in_data_dir(data_dir)
    key = store.create("bench")
    store.close()
    try:
        process, url = start_app(data_dir, "local")
    except RuntimeError as failure:
        raise SystemExit(str(failure)) from failure
    return process, url, key


WATCH = """() => {
  window.shownAt = null;  // epoch ms when the final status appeared (same clock as the server)
  const status = document.getElementById('status');
  new MutationObserver((_, observer) => {
    if (status.dataset.terminal === 'true') {
      window.shownAt = performance.timeOrigin + performance.now();
      observer.disconnect();
    }
  }).observe(status, {attributes: true});
}"""


def click_run(page: Page, source: str) -> tuple[float, float, float]:
    """Seconds from the click to the first output shown and to the final status, and from
    the run's recorded end (finished_at) to the page showing it."""
    page.evaluate("t => document.querySelector('.CodeMirror').CodeMirror.setValue(t)", source)
    page.wait_for_selector("[data-testid=run]:enabled")
    page.evaluate(WATCH)
    start = time.perf_counter()
    page.click("[data-testid=run]")
    page.wait_for_function(
        "document.querySelector('[data-testid=output]').textContent !== ''", polling="raf"
    )
    first = time.perf_counter() - start
    page.wait_for_selector("#status[data-terminal='true']", timeout=120_000)
    done = time.perf_counter() - start
    lag_ms = page.evaluate("""async () => {
      const id = location.hash.slice('#run='.length);
      const key = localStorage.getItem('codeexec.key');
      const headers = {Authorization: 'Bearer ' + key};
      const r = await fetch('/api/v1/executions/' + id, {headers});
      return window.shownAt - Date.parse((await r.json()).finished_at);
    }""")
    return first, done, float(lag_ms) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        process, url, key = serve(Path(data_dir))
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)
                page = browser.new_page()  # a fresh context: nothing cached yet
                page.add_init_script(f"localStorage.setItem('codeexec.key', {key!r})")
                loaded: list[int] = []
                page.on("response", lambda r: loaded.append(len(r.body())) if r.ok else None)
                start = time.perf_counter()
                page.goto(url + "/")
                page.wait_for_selector("body[data-ready='true']")
                report("console_ready_ms", (time.perf_counter() - start) * 1000, "ms")
                report("console_loaded_bytes", sum(loaded), "bytes")
                hello = [click_run(page, "print('hi')\n") for _ in range(args.repeat)]
                report(
                    "console_click_to_first_output_ms",
                    statistics.median(h[0] for h in hello) * 1000,
                    "ms",
                )
                report(
                    "console_click_to_result_ms",
                    statistics.median(h[1] for h in hello) * 1000,
                    "ms",
                )
                report(
                    "console_end_to_shown_ms", statistics.median(h[2] for h in hello) * 1000, "ms"
                )
                flood = [click_run(page, FLOOD.format(n=args.lines)) for _ in range(3)]
                events = page.locator("[data-event-type=ExecutionOutput]").count()
                report("console_flood_output_events", events, "events")
                report(
                    "console_flood_end_to_shown_ms",
                    statistics.median(f[2] for f in flood) * 1000,
                    "ms",
                )
                browser.close()
        finally:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
