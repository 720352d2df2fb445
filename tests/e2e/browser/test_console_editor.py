"""E2E, browser: the console's editor: highlighting and indentation per language, file tabs,
templates, stdin, args and limits, and Ctrl+Enter to run."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, Route

from tests.e2e.browser_fixtures import choose_language, code, set_code, wait_finished
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


def test_highlighting_line_numbers_and_entry_file_follow_the_language(page: Page) -> None:
    assert page.locator("[data-testid=editor] .CodeMirror").count() == 1
    assert page.text_content("#file-tabs [role=tab]") == "main.py"
    set_code(page, "def f(x):\n    return 'a'  # c\n")
    assert page.text_content("[data-testid=editor] .cm-keyword") == "def"
    assert page.text_content("[data-testid=editor] .cm-string") == "'a'"
    assert page.text_content("[data-testid=editor] .cm-comment") == "# c"
    numbers = page.locator(".CodeMirror-linenumber").all_text_contents()
    assert {"1", "2", "3"} <= set(numbers)
    choose_language(page, "c")
    assert page.text_content("#file-tabs [role=tab]") == "main.c"
    assert code(page).startswith("def f(x)")  # edited code is never replaced
    set_code(page, "")
    choose_language(page, "python")
    choose_language(page, "c")
    assert code(page).startswith("#include <stdio.h>")  # an empty or untouched one is
    assert page.text_content("[data-testid=editor] .cm-meta") == "#include <stdio.h>"
    choose_language(page, "java")
    assert page.text_content("#file-tabs [role=tab]") == "Main.java"
    assert "public class Main" in code(page)


def test_indentation_follows_the_language(page: Page) -> None:
    set_code(page, "")
    page.click(".CodeMirror-code")
    page.keyboard.type("for i in range(2):\nprint(i)")
    assert code(page) == "for i in range(2):\n    print(i)"
    page.keyboard.press("Enter")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")  # Tab indents inside the editor
    page.keyboard.type("x")
    assert code(page) == "for i in range(2):\n    print(i)\n    x"
    choose_language(page, "javascript")
    set_code(page, "")
    page.keyboard.type("if (x) {\nf();\n}")
    assert code(page) == "if (x) {\n  f();\n}"
    choose_language(page, "go")
    set_code(page, "")
    page.keyboard.type("func main() {\nx()")
    assert code(page) == "func main() {\n\tx()"


def test_templates_run_and_greet_what_stdin_says(page: Page) -> None:
    page.click("#options summary")
    page.fill("#stdin", "codeexec")
    for language in ("python", "javascript", "bash", "c"):
        choose_language(page, language)
        page.click("#template")
        page.click("[data-testid=run]")
        assert wait_finished(page, 60_000) == "succeeded", page.text_content("#detail")
        assert page.text_content("[data-testid=output]") == "Hello, codeexec!\n", language


def test_ctrl_enter_runs_from_the_editor(page: Page, console_server: Server, user_key: str) -> None:
    set_code(page, 'print("via keyboard")\n')
    page.click(".CodeMirror-code")
    page.keyboard.press("Control+Enter")
    assert wait_finished(page) == "succeeded"
    assert page.text_content("[data-testid=output]") == "via keyboard\n"
    assert code(page) == 'print("via keyboard")\n'  # no newline typed, one run
    with console_server.client(user_key) as client:
        assert len(client.get("/api/v1/executions").json()["items"]) == 1


def test_files_in_tabs_are_sent_as_the_api_files(page: Page) -> None:
    page.fill("#new-file", "../evil.py")
    page.click("#add-file button")
    assert "file name" in page.inner_text("#file-error")
    page.fill("#new-file", "greeting.py")
    page.click("#add-file button")
    assert page.get_attribute("#file-tabs [role=tab] >> nth=1", "aria-selected") == "true"
    set_code(page, "def greet(n):\n    return 'hi ' + n\n")
    page.click("#file-tabs [role=tab] >> nth=0")
    set_code(page, "from greeting import greet\nprint(greet('tabs'))\n")
    page.click("[data-testid=run]")
    assert wait_finished(page) == "succeeded", page.text_content("[data-testid=output]")
    assert page.text_content("[data-testid=output]") == "hi tabs\n"
    page.focus("#file-tabs [role=tab] >> nth=0")
    page.keyboard.press("ArrowRight")  # the tabs pattern: arrows move, Delete removes
    assert page.get_attribute("#file-tabs [role=tab] >> nth=1", "aria-selected") == "true"
    assert page.evaluate("document.activeElement.textContent") == "greeting.py"
    page.keyboard.press("Delete")
    assert page.locator("#file-tabs [role=tab]").all_text_contents() == ["main.py"]
    page.fill("#new-file", "other.py")
    page.click("#add-file button")
    page.click("[aria-label='Remove file other.py']")
    assert page.locator("#file-tabs [role=tab]").count() == 1


def test_stdin_args_and_limits_reach_the_program(page: Page) -> None:
    page.click("#options summary")
    set_code(page, "import sys\nprint(sys.argv[1:], sys.stdin.read())\n")
    page.fill("#stdin", "from stdin")
    page.fill("#args", "one\ntwo words\n")
    page.click("[data-testid=run]")
    assert wait_finished(page) == "succeeded"
    assert page.text_content("[data-testid=output]") == "['one', 'two words'] from stdin\n"
    set_code(page, "import time\ntime.sleep(10)\n")
    page.fill("#limit-wall_time_s", "1")
    page.click("[data-testid=run]")
    assert wait_finished(page) == "time_limit_exceeded"
    page.fill("#limit-wall_time_s", "")
    page.fill("#limit-memory_bytes", "1048576")  # 1 TiB, over the server's maximum
    page.click("[data-testid=run]")
    page.wait_for_selector("#status[data-status='error']")
    assert page.inner_text("#detail").startswith("limits.memory_bytes: must be at most")
    assert page.get_attribute("#limit-memory_bytes", "aria-invalid") == "true"
    assert page.get_attribute("#limit-wall_time_s", "aria-invalid") is None


def test_every_asset_comes_from_the_server_itself(browser: Browser, console_server: Server) -> None:
    context = browser.new_context()
    elsewhere: list[str] = []

    def only_our_server(route: Route) -> None:
        if route.request.url.startswith(console_server.url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_our_server)
    page = context.new_page()
    page.goto(console_server.url + "/")
    page.wait_for_selector(".CodeMirror")
    assert elsewhere == []
    assert page.evaluate("typeof window.CodeMirror") == "function"
    context.close()
