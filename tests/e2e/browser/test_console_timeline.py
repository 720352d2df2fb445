"""E2E, browser: a run's timeline: every event drawn as it happens on a time axis, with the
durations between stages, and each event inspectable as the JSON the stream sent."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from playwright.sync_api import Page, Route

from tests.e2e.browser_fixtures import set_code, wait_finished
from tests.e2e.conftest import Server
from tests.e2e.sse import read_events

pytestmark = pytest.mark.e2e
TIMELINE = "[data-testid=timeline]"


def run_id(page: Page) -> str:
    return str(page.evaluate("location.hash.slice('#run='.length)"))


def drawn_types(page: Page) -> list[str]:
    return list(
        page.eval_on_selector_all(
            f"{TIMELINE} [data-event-type]", "es => es.map(e => e.dataset.eventType)"
        )
    )


def test_events_appear_as_they_happen_one_element_per_event(
    page: Page, console_server: Server, user_key: str
) -> None:
    set_code(
        page,
        "import sys, time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.6)\n"
        "print('e', file=sys.stderr)\n",
    )
    page.click("[data-testid=run]")
    page.wait_for_selector(f"{TIMELINE} [data-event-type=ExecutionOutput]")
    live = drawn_types(page)
    assert live[:2] == ["ExecutionRequested", "ExecutionQueued"]
    assert "ExecutionStarted" in live and "ExecutionCompleted" not in live
    page.wait_for_selector(f"{TIMELINE} [data-event-type=ExecutionCompleted]", timeout=20_000)
    wait_finished(page)
    with console_server.client(user_key) as client:
        sent = [e.event for e in read_events(client, run_id(page))]
    assert Counter(drawn_types(page)) == Counter(sent)
    assert sent.count("ExecutionOutput") >= 4
    labels = page.locator(f"{TIMELINE} .name").all_text_contents()
    assert labels[:4] == ["Requested", "Queued", "Scheduled", "Started"]
    assert "stdout (3)" in labels and "stderr (1)" in labels
    deltas = page.locator(f"{TIMELINE} .stage .delta").all_text_contents()
    assert deltas[0] == "0" and all(d.startswith("+") for d in deltas[1:])
    completed = page.text_content(f"{TIMELINE} [data-event-type=ExecutionCompleted] .delta")
    assert completed is not None and completed.endswith(" s")  # ran about 1.8 s after starting
    axis = page.locator(f"{TIMELINE} .axis text").all_text_contents()
    assert axis[0] == "0" and any(label.endswith(" s") for label in axis)


def test_each_event_opens_as_json_by_click_or_enter(
    page: Page, console_server: Server, user_key: str
) -> None:
    set_code(page, "print('hello')\n")
    page.click("[data-testid=run]")
    wait_finished(page)
    with console_server.client(user_key) as client:
        sent = {e.event: e.data for e in read_events(client, run_id(page))}
    page.click(f"{TIMELINE} [data-event-type=ExecutionRequested]")
    assert page.is_visible("#inspector")
    assert json.loads(page.text_content("#inspector-json") or "") == sent["ExecutionRequested"]
    page.keyboard.press("Escape")
    assert not page.is_visible("#inspector")
    page.focus(f"{TIMELINE} [data-event-type=ExecutionCompleted]")
    page.keyboard.press("Enter")
    assert json.loads(page.text_content("#inspector-json") or "") == sent["ExecutionCompleted"]
    page.click("#inspector-close")
    focused = page.evaluate("document.activeElement.dataset.eventType")
    assert focused == "ExecutionCompleted"  # focus went back to the event at once
    page.focus(f"{TIMELINE} .ev.output")
    page.keyboard.press("Enter")
    shown = json.loads(page.text_content("#inspector-json") or "")
    assert [e["type"] for e in shown] == ["ExecutionOutput"]
    assert page.text_content("#inspector-text pre") == "hello\n"


def test_a_dropped_stream_resumes_with_nothing_lost_or_repeated(
    page: Page, console_server: Server, user_key: str
) -> None:
    with console_server.client(user_key) as client:
        created = client.post(
            "/api/v1/executions",
            params={"wait": "true"},
            json={"language": "python", "source": "print(1)\nprint(2, flush=True)"},
        ).json()
        sent = [e.event for e in read_events(client, created["id"])]
    asked: list[str] = []

    def cut_the_first_stream(route: Route) -> None:
        asked.append(route.request.url)
        if len(asked) > 1:
            route.continue_()
            return
        body = route.fetch().text()
        blocks = body.split("\n\n")
        first_two = [b for b in blocks if "\ndata: " in b][:2]
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream"},
            body="\n\n".join(first_two) + "\n\n",  # then the connection ends early
        )

    page.route("**/events?*", cut_the_first_stream)
    page.goto(f"{console_server.url}/#run={created['id']}")
    page.wait_for_selector("#status[data-terminal='true']")
    assert [url.rsplit("?", 1)[1] for url in asked] == ["after=0", "after=2"]
    assert drawn_types(page) == sent
    assert page.text_content("[data-testid=output]") == "1\n2\n"
