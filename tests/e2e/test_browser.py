"""E2E: the web page in headless Chromium: type code, run, watch live output and final status."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if shutil.which(CHROMIUM) is None:
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def open_page(browser: Any, server: Server) -> Any:
    page = browser.new_page()
    page.goto(server.url + "/")
    page.fill("#apikey", server.alice_key)
    page.dispatch_event("#apikey", "change")
    page.wait_for_selector(
        f"#language option[value='{server.programs.language}']", state="attached"
    )
    page.select_option("#language", server.programs.language)
    return page


def test_type_code_run_and_see_live_output_and_status(browser: Any, server: Server) -> None:
    page = open_page(browser, server)
    page.fill("#code", "")
    page.click("#code")
    page.keyboard.type(server.programs.chunks)
    page.click("#run")
    page.wait_for_function("document.getElementById('output').textContent.includes('a')")
    page.wait_for_selector("#status[data-terminal='true']", timeout=20_000)
    assert page.text_content("#output") == "a\nb\n"
    assert page.text_content("#status") == "succeeded"
    page.wait_for_selector("#recent li")
    page.close()


def test_cancel_from_the_page(browser: Any, server: Server) -> None:
    page = open_page(browser, server)
    page.fill("#code", server.programs.slow)
    page.click("#run")
    page.wait_for_selector("#status[data-status='running']", timeout=20_000)
    page.click("#cancel")
    page.wait_for_selector("#status[data-terminal='true']", timeout=20_000)
    assert page.text_content("#status") == "cancelled"
    page.close()


def test_tab_inserts_spaces_in_the_editor(browser: Any, server: Server) -> None:
    page = open_page(browser, server)
    page.fill("#code", "")
    page.click("#code")
    page.keyboard.press("Tab")
    page.keyboard.type("x")
    assert page.input_value("#code") == "    x"
    page.close()
