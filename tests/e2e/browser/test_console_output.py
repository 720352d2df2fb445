"""E2E, browser: live output in the console: streaming, stdout and stderr apart, bytes that
are not UTF-8, the final facts, cancel, and copy and download of the exact bytes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e.browser_fixtures import choose_language, set_code, wait_finished

pytestmark = pytest.mark.e2e
OUTPUT = "[data-testid=output]"


def test_output_streams_while_the_program_runs_for_seconds(page: Page) -> None:
    set_code(
        page,
        "import time\nfor i in range(8):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n",
    )
    page.click("[data-testid=run]")
    page.wait_for_function(
        "document.querySelector('[data-testid=output]').textContent.includes('tick 0')"
    )
    first_seen = time.monotonic()
    assert page.get_attribute("#status", "data-status") == "running"
    assert "tick 7" not in page.inner_text(OUTPUT)
    page.wait_for_function(
        "document.querySelector('[data-testid=output]').textContent.includes('tick 3')"
    )
    assert page.get_attribute("#status", "data-terminal") == "false"
    assert wait_finished(page) == "succeeded"
    assert time.monotonic() - first_seen > 2.5  # lines came as printed, not all at the end
    assert page.text_content(OUTPUT) == "".join(f"tick {i}\n" for i in range(8))


def test_stdout_and_stderr_are_told_apart_and_can_be_shown_alone(page: Page) -> None:
    set_code(page, "import sys\nprint('to out', flush=True)\nprint('to err', file=sys.stderr)\n")
    page.click("[data-testid=run]")
    wait_finished(page)
    assert page.text_content(f"{OUTPUT} .stdout") == "to out\n"
    assert page.text_content(f"{OUTPUT} .stderr") == "to err\n"
    out_color = page.eval_on_selector(f"{OUTPUT} .stdout", "e => getComputedStyle(e).color")
    err_color = page.eval_on_selector(f"{OUTPUT} .stderr", "e => getComputedStyle(e).color")
    assert out_color != err_color
    page.select_option("#stream-filter", "stderr")
    assert page.inner_text(OUTPUT) == "to err\n"
    assert not page.is_visible(f"{OUTPUT} .stdout")


def test_bytes_that_are_not_utf8_are_shown_as_escapes(page: Page) -> None:
    set_code(
        page,
        "import sys, time\nw = sys.stdout.buffer\n"
        "w.write(b'bad \\xff\\xfe \\xe2\\x82 end\\n'); w.flush()\n"
        "w.write(b'split \\xc3'); w.flush(); time.sleep(0.3)\n"  # é cut between two chunks
        "w.write(b'\\xa9 whole\\n'); w.flush()\n",
    )
    page.click("[data-testid=run]")
    assert wait_finished(page) == "succeeded"
    assert page.text_content(OUTPUT) == "bad \\xFF\\xFE \\xE2\\x82 end\nsplit é whole\n"
    bad = page.locator(f"{OUTPUT} .bad-byte").all_text_contents()
    assert bad == ["\\xFF", "\\xFE", "\\xE2\\x82"]  # one per maximal ill-formed part
    assert page.locator("[data-event-type=ExecutionOutput]").count() >= 2


def test_exit_code_signal_time_and_memory_are_shown(page: Page) -> None:
    set_code(page, "print('partial')\nraise SystemExit(3)\n")
    page.click("[data-testid=run]")
    assert wait_finished(page) == "runtime_error"
    facts = page.inner_text("#facts")
    assert "exit code\n3" in facts and "wall time" in facts and "memory" in facts
    set_code(page, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    page.click("[data-testid=run]")
    assert wait_finished(page) == "signaled"
    assert "11 (SIGSEGV)" in page.inner_text("#facts")


def test_the_compilers_output_is_marked_apart(page: Page) -> None:
    choose_language(page, "c")
    set_code(page, "int main(void) { return undeclared; }\n")
    page.click("[data-testid=run]")
    assert wait_finished(page, 60_000) == "compilation_error"
    compiler = page.text_content(f"{OUTPUT} .compile") or ""
    assert "undeclared" in compiler and "error" in compiler
    assert page.locator(f"{OUTPUT} .stdout").count() == 0
    labels = page.locator("[data-testid=timeline] .name").all_text_contents()
    assert "compile stderr (1)" in labels


def test_cancel_from_the_page_stops_the_program(page: Page) -> None:
    set_code(page, "import time\nprint('start', flush=True)\ntime.sleep(60)\nprint('never')\n")
    page.click("[data-testid=run]")
    page.wait_for_selector("#status[data-status='running']")
    page.wait_for_function(
        "document.querySelector('[data-testid=output]').textContent === 'start\\n'"
    )
    started = time.monotonic()
    page.click("#cancel")
    assert wait_finished(page) == "cancelled"
    assert time.monotonic() - started < 15
    assert page.text_content(OUTPUT) == "start\n"
    assert page.is_disabled("#cancel") and page.is_enabled("[data-testid=run]")
    page.wait_for_selector("[data-testid=timeline] [data-event-type=ExecutionCancelled]")


def test_copy_and_download_give_the_output(page: Page, tmp_path: Path) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    set_code(page, "import sys\nsys.stdout.buffer.write(b'caf\\xc3\\xa9 \\xff\\n')\n")
    page.click("[data-testid=run]")
    wait_finished(page)
    page.click("#copy")
    page.wait_for_selector("#copied:has-text('Copied')", state="attached")
    assert page.evaluate("navigator.clipboard.readText()") == "café \\xFF\n"
    with page.expect_download() as download:
        page.click("#download")
    target = tmp_path / "output.bin"
    download.value.save_as(target)
    assert target.read_bytes() == b"caf\xc3\xa9 \xff\n"  # the exact bytes, not the escapes
