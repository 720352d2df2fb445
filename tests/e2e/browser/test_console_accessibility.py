"""E2E, browser: the console is usable by keyboard alone, passes axe-core's WCAG 2 A/AA
checks (labels, roles, colour contrast) and has a layout for narrow screens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.browser_fixtures import code, open_console, set_code, wait_finished
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"


def tab_to(page: Page, selector: str, limit: int = 60) -> None:
    """Presses Tab until `selector` has the focus (fails if it never does)."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never got the focus by Tab")


def axe_violations(page: Page, checks: frozenset[str]) -> list[dict[str, Any]]:
    """axe-core's WCAG 2 A/AA violations; `checks` are rules that must have run (and passed
    somewhere), so an empty answer means the page was really checked."""
    assert AXE.exists(), "axe-core is missing: bash scripts/install.sh --test"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}})"
    )
    checked = {rule["id"] for rule in result["passes"]}
    assert checks <= checked
    return [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]


def test_a_run_from_key_to_event_json_by_keyboard_alone(
    browser: Browser, console_server: Server, user_key: str
) -> None:
    page = browser.new_page()
    page.goto(console_server.url + "/")
    page.wait_for_selector("body[data-ready='true']")
    tab_to(page, "#apikey")
    page.keyboard.type(user_key)
    page.keyboard.press("Tab")  # leaving the field commits the key
    page.wait_for_selector("body[data-ready='true']")
    tab_to(page, ".CodeMirror textarea")
    page.keyboard.press("Control+a")
    page.keyboard.type("import sys\nprint(sys.stdin.read())")
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")  # Escape then Tab leaves the editor instead of indenting
    assert code(page) == "import sys\nprint(sys.stdin.read())"
    assert not page.evaluate("document.activeElement.matches('.CodeMirror textarea')")
    tab_to(page, "#options summary")
    page.keyboard.press("Enter")
    tab_to(page, "#stdin")
    page.keyboard.type("typed")
    page.keyboard.press("Control+Enter")
    assert wait_finished(page) == "succeeded"
    assert page.text_content("[data-testid=output]") == "typed\n"
    tab_to(page, "[data-testid=timeline] [data-event-type=ExecutionRequested]")
    page.keyboard.press("Enter")
    assert page.is_visible("#inspector")
    page.keyboard.press("Escape")
    tab_to(page, "#history tr button")
    page.keyboard.press("Enter")
    page.wait_for_selector("#history tr[aria-current='true']")
    page.close()


def test_axe_finds_no_wcag_aa_violations_after_a_run(page: Page) -> None:
    set_code(page, "import sys\nprint('out')\nprint('err', file=sys.stderr)\n")
    page.click("#options summary")
    page.click("[data-testid=run]")
    wait_finished(page)
    assert axe_violations(page, frozenset({"color-contrast", "label", "button-name"})) == []
    page.click("[data-testid=timeline] [data-event-type=ExecutionCompleted]")
    # The open inspector too (a modal: the rest of the page is inert then).
    assert axe_violations(page, frozenset({"color-contrast", "button-name"})) == []


def test_narrow_screens_get_one_column_without_sideways_scrolling(
    browser: Browser, console_server: Server, user_key: str
) -> None:
    page = open_console(
        browser, console_server, user_key, viewport={"width": 375, "height": 812}, is_mobile=True
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    editor = page.locator(".editor-pane").bounding_box()
    output = page.locator(".output-pane").bounding_box()
    timeline = page.locator(".timeline-pane").bounding_box()
    assert editor and output and timeline
    assert editor["x"] == output["x"] and output["y"] >= editor["y"] + editor["height"]
    assert timeline["y"] >= output["y"] + output["height"]
    assert editor["width"] <= 375
    set_code(page, "print('small screen')\n")
    page.click("[data-testid=run]")
    assert wait_finished(page) == "succeeded"
    page.wait_for_selector("[data-testid=timeline] [data-event-type=ExecutionCompleted]")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    svg = page.locator("[data-testid=timeline] svg").bounding_box()
    assert svg and svg["x"] + svg["width"] <= 375
    page.context.close()
