"""E2E, browser: the history of the user's runs: filters by status and language, paging,
and opening a past run with its source, input, output and timeline."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.e2e.browser_fixtures import code
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
ROWS = "#history tr"


def submit(server: Server, key: str, body: dict[str, Any]) -> dict[str, Any]:
    with server.client(key) as client:
        response = client.post("/api/v1/executions", params={"wait": "true"}, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def reload(page: Page) -> None:
    page.reload()
    page.wait_for_selector("body[data-ready='true']")


def test_filters_by_status_and_language_and_pages(
    page: Page, console_server: Server, user_key: str
) -> None:
    for i in range(11):
        submit(console_server, user_key, {"language": "python", "source": f"print({i})"})
    submit(console_server, user_key, {"language": "bash", "source": "exit 3"})
    reload(page)
    assert page.locator(ROWS).count() == 10
    assert page.is_disabled("#history-newer") and page.is_enabled("#history-older")
    assert "bash" in (page.text_content(f"{ROWS} >> nth=0") or "")  # newest first
    page.click("#history-older")
    page.wait_for_selector("#history-page:has-text('page 2')")
    assert page.locator(ROWS).count() == 2 and page.is_disabled("#history-older")
    page.click("#history-newer")
    page.wait_for_selector("#history-page:has-text('page 1')")
    assert page.locator(ROWS).count() == 10
    page.select_option("#history-status", "runtime_error")
    page.wait_for_function("document.querySelectorAll('#history tr').length === 1")
    assert "runtime error" in (page.text_content(ROWS) or "")
    page.select_option("#history-status", "")
    page.select_option("#history-language", "bash")
    page.wait_for_function("document.querySelectorAll('#history tr').length === 1")
    page.select_option("#history-language", "python")
    page.wait_for_selector("#history-page:has-text('page 1')")
    page.wait_for_function("document.querySelectorAll('#history tr').length === 10")
    page.click("#history-older")
    page.wait_for_function("document.querySelectorAll('#history tr').length === 1")
    page.select_option("#history-status", "cancelled")
    page.wait_for_selector("#history-message:has-text('No runs match')")
    assert page.locator(ROWS).count() == 0


def test_opening_a_past_run_shows_its_source_input_output_and_timeline(
    page: Page, console_server: Server, user_key: str
) -> None:
    helper = "def shout(s):\n    return s.upper()\n"
    main = "import sys\nfrom shout import shout\nprint(shout(sys.stdin.read()), sys.argv[1:])\n"
    past = submit(
        console_server,
        user_key,
        {
            "language": "python",
            "files": [
                {"name": "main.py", "content": main},
                {
                    "name": "shout.py",
                    "content": base64.b64encode(helper.encode()).decode(),
                    "encoding": "base64",
                },
            ],
            "stdin": "quiet",
            "args": ["-v"],
            "limits": {"wall_time_s": 5},
        },
    )
    assert past["stdout"] == "QUIET ['-v']\n"
    reload(page)
    page.click(f"{ROWS} >> nth=0 >> button")
    page.wait_for_selector("#status[data-terminal='true']")
    assert page.text_content("[data-testid=output]") == "QUIET ['-v']\n"
    assert page.get_attribute(f"{ROWS} >> nth=0", "aria-current") == "true"
    tabs = page.locator("#file-tabs [role=tab]").all_text_contents()
    assert tabs == ["main.py", "shout.py"] and code(page) == main
    page.click("#file-tabs [role=tab] >> nth=1")
    assert code(page) == helper
    assert page.input_value("#stdin") == "quiet" and page.input_value("#args") == "-v"
    assert page.input_value("#limit-wall_time_s") == "5"
    page.wait_for_selector("[data-testid=timeline] [data-event-type=ExecutionCompleted]")
    assert page.evaluate("location.hash") == "#run=" + past["id"]
    reload(page)  # the address names the run: it opens again
    page.wait_for_selector("[data-testid=timeline] [data-event-type=ExecutionCompleted]")
    assert page.text_content("[data-testid=output]") == "QUIET ['-v']\n"
    page.click("[data-testid=run]")  # and runs again as it was
    page.wait_for_function(
        "document.querySelectorAll('#history tr').length === 2"
        " && document.querySelector('#status').dataset.terminal === 'true'"
    )
    assert page.text_content("[data-testid=output]") == "QUIET ['-v']\n"


def test_a_past_file_that_is_not_utf8_is_flagged_when_opened(
    page: Page, console_server: Server, user_key: str
) -> None:
    latin1 = base64.b64encode("print('caf\xe9')  # é in Latin-1\n".encode("latin-1")).decode()
    past = submit(
        console_server,
        user_key,
        {
            "language": "python",
            "files": [{"name": "main.py", "content": latin1, "encoding": "base64"}],
        },
    )
    page.goto(f"{console_server.url}/#run={past['id']}")
    page.wait_for_selector("#status[data-terminal='true']")
    assert "main.py: not UTF-8 text" in page.inner_text("#file-error")
    assert "\ufffd" in code(page)  # replaced, and said so
