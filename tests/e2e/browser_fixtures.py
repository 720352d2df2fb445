"""Browser fixtures shared by every page's tests: headless Debian Chromium driven by
Playwright, a local-sandbox server for the console, and a page opened with a user's key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.chromium import CHROMIUM, launch
from tests.e2e.conftest import Server, local_sandbox_missing, start_server, stop_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium (never a browser Playwright downloads); installed by
    `scripts/install.sh --test`, so a missing one is a failure, not a skip. One per module:
    Playwright's sync API cannot run two at once, and a module may bring its own."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run bash scripts/install.sh --test")
    with sync_playwright() as playwright:
        launched = launch(playwright)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on the real local sandbox: the console's languages are real ones."""
    if reason := local_sandbox_missing():
        pytest.fail(f"the local sandbox is needed: {reason} (bash scripts/install.sh --test)")
    running = start_server("local", tmp_path_factory.mktemp("data-console"))
    yield running
    stop_server(running)


def fresh_user(server: Server) -> str:
    """A key of a user with no runs yet, so a test sees only its own history."""
    return server.new_user_key(f"user-{uuid.uuid4().hex[:8]}")


def open_console(browser: Browser, server: Server, key: str, **context: object) -> Page:
    """The console at `/` with `key` entered, once the languages have loaded."""
    page = browser.new_context(**context).new_page()  # type: ignore[arg-type]
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready='true']")
    page.fill("#apikey", key)
    page.dispatch_event("#apikey", "change")
    page.wait_for_selector("body[data-ready='true']")
    page.wait_for_selector("#language option[value^='python@']", state="attached")
    return page


def set_code(page: Page, source: str) -> None:
    """Replaces the active file's text through CodeMirror's own API (typing is tested
    apart, and auto-indentation would change typed multi-line programs)."""
    page.evaluate("t => document.querySelector('.CodeMirror').CodeMirror.setValue(t)", source)


def choose_language(page: Page, name: str) -> None:
    """Selects the first version the server lists of the language `name`."""
    first = "(s, n) => [...s.options].find(o => o.value.startsWith(n + '@')).value"
    page.select_option("#language", page.eval_on_selector("#language", first, name))


def code(page: Page) -> str:
    return str(page.evaluate("document.querySelector('.CodeMirror').CodeMirror.getValue()"))


TERMINAL_DRAWN = ", ".join(
    f"[data-testid=timeline] [data-event-type={t}]"
    for t in (
        "ExecutionCompleted",
        "ExecutionFailed",
        "ExecutionTimedOut",
        "ExecutionCancelled",
        "ExecutionRejected",
    )
)


def wait_finished(page: Page, timeout_ms: int = 30_000) -> str:
    """Waits for the final status (set once the result was fetched) and, unless the
    submission was refused, for the timeline to draw the terminal event (it redraws at most
    every 100 ms); returns the status."""
    page.wait_for_selector("#status[data-terminal='true']", timeout=timeout_ms)
    status = str(page.get_attribute("#status", "data-status"))
    if status != "error":
        page.wait_for_selector(TERMINAL_DRAWN, timeout=timeout_ms)
    return status
