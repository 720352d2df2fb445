"""E2E: the operators' dashboard in headless Chromium against a live server whose dead
letters are real (tests.e2e.poisoned): key entry, charts, dead letters, replays, limits,
keyboard use and a narrow screen."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.poisoned import LiveServer, live_server

pytestmark = pytest.mark.e2e
LETTERS = "/api/v1/admin/dead-letters"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("data-dashboard-browser")) as server:
        yield server


def connected(browser: Browser, live: LiveServer, width: int = 1280) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(live.url + "/dashboard")
    page.fill("#adminkey", live.admin_key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#connection[data-state='ok']")
    return page


def run(live: LiveServer, key: str, source: str, wait: bool = True) -> str:
    with live.client(key) as client:
        response = client.post(
            "/api/v1/executions",
            params={"wait": str(wait).lower()},
            json={"language": "fake", "source": source},
        )
    assert response.status_code in (200, 201, 202), response.text
    return str(response.json()["id"])


def exhausted_letter(live: LiveServer, execution_id: str) -> dict[str, Any]:
    with live.client(live.admin_key) as admin:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for item in admin.get(LETTERS, params={"state": "exhausted"}).json()["items"]:
                if item["execution_id"] == execution_id:
                    return dict(item)
            time.sleep(0.1)
    raise AssertionError(f"no exhausted dead letter for {execution_id}")


def test_a_user_key_is_refused_and_an_admin_key_connects(
    browser: Browser, live: LiveServer
) -> None:
    page = browser.new_page()
    page.goto(live.url + "/dashboard")
    assert page.get_attribute("header a[href='/']", "href") == "/"
    page.fill("#adminkey", live.user_key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#connection[data-state='error']")
    assert "not an admin" in (page.text_content("#connection") or "")
    page.fill("#adminkey", "cx_nobody")
    page.press("#adminkey", "Enter")
    page.wait_for_function("document.getElementById('connection').textContent.includes('unknown')")
    page.fill("#adminkey", live.admin_key)
    page.press("#adminkey", "Enter")
    page.wait_for_selector("#connection[data-state='ok']")
    page.reload()  # the key is kept for this tab
    page.wait_for_selector("#connection[data-state='ok']")
    page.close()


def test_the_queue_chart_draws_running_runs_over_time(browser: Browser, live: LiveServer) -> None:
    hanging = [run(live, live.user_key, "out start\nhang", wait=False) for _ in range(2)]
    page = connected(browser, live)
    chart = "[data-testid='dashboard'] #queue-chart svg"
    page.wait_for_selector(f"{chart}[data-running='2']", timeout=15_000)
    page.wait_for_function(f'document.querySelector("{chart}").dataset.samples > 3', timeout=15_000)
    points = page.get_attribute(f"{chart} .series.running polyline", "points") or ""
    assert len(points.split()) > 3
    assert "2 running now" in (page.get_attribute(chart, "aria-label") or "")
    assert page.text_content("#running-now") == "2"
    assert "coordinator" in (page.text_content("#queue-note") or "")
    with live.client(live.user_key) as user:
        for execution_id in hanging:
            user.post(f"/api/v1/executions/{execution_id}/cancel")
    page.wait_for_selector(f"{chart}[data-running='0']", timeout=15_000)
    page.close()


def test_runs_per_status_and_consumer_lag_per_group(browser: Browser, live: LiveServer) -> None:
    run(live, live.user_key, "out fine")
    run(live, live.user_key, "out partial\nexit 3")
    page = connected(browser, live)
    bars = "[data-testid='dashboard'] #status-chart svg g.bar"
    page.wait_for_selector(f"{bars}[data-name='succeeded']")
    page.wait_for_selector(f"{bars}[data-name='runtime_error'].bad")
    assert int(page.get_attribute(f"{bars}[data-name='succeeded']", "data-value") or 0) >= 1
    total = int(page.text_content("#runs-total") or 0)
    values = page.eval_on_selector_all(bars, "gs => gs.map(g => Number(g.dataset.value))")
    assert sum(values) == total
    # The in-memory bus reports each consumer group it has.
    lag = "#lag-chart svg g.bar"
    page.wait_for_selector(f"{lag}[data-name='worker']")
    groups = page.eval_on_selector_all(lag, "gs => gs.map(g => g.dataset.name)")
    assert {"coordinator", "projections", "saga", "poisoner"} <= set(groups)
    page.close()


def test_an_admin_inspects_and_retries_a_dead_letter(browser: Browser, live: LiveServer) -> None:
    live.poisoner.fixed = False
    letter = exhausted_letter(live, run(live, live.poison_key, "out poison"))
    page = connected(browser, live)
    row = f"#letters tbody tr[data-id='{letter['id']}']"
    page.wait_for_selector(f"{row}[data-state='exhausted']")
    page.click(f"{row} button[data-action='inspect']")
    page.wait_for_selector("#letter-detail:not([hidden])")
    shown = page.text_content("[data-testid='dead-letter-json']") or ""
    assert '"event_type": "ExecutionCompleted"' in shown and letter["execution_id"] in shown
    assert page.evaluate("document.activeElement.id") == "letter-json"
    page.keyboard.press("Escape")  # closes it, back to the button that opened it
    page.wait_for_selector("#letter-detail", state="hidden")
    assert page.evaluate("document.activeElement.dataset.action") == "inspect"
    live.poisoner.fixed = True
    page.click(f"{row} button[data-action='retry']")
    # Resolved letters leave the open list; "all" shows them resolved.
    page.wait_for_selector(row, state="detached", timeout=20_000)
    page.select_option("#letters-state", "")
    page.wait_for_selector(f"{row}[data-state='resolved']", timeout=20_000)
    assert page.is_disabled(f"{row} button[data-action='retry']")
    page.close()


def test_an_admin_discards_a_dead_letter_in_two_steps(browser: Browser, live: LiveServer) -> None:
    live.poisoner.fixed = False
    letter = exhausted_letter(live, run(live, live.poison_key, "out poison again"))
    page = connected(browser, live)
    discard = f"#letters tbody tr[data-id='{letter['id']}'] button[data-action='discard']"
    page.click(discard)
    assert page.text_content(discard) == "Confirm discard"
    page.click(discard)
    page.wait_for_selector(discard, state="detached")
    with live.client(live.admin_key) as admin:
        assert admin.get(letter["links"]["self"]).json()["state"] == "discarded"
    page.close()


def test_replay_sessions_start_pause_resume_and_cancel(browser: Browser, live: LiveServer) -> None:
    run(live, live.user_key, "out something to replay")
    page = connected(browser, live)
    page.fill("#replay-rate", "0")
    page.click("#replay-start")
    page.wait_for_selector("#replay-rate[aria-invalid='true']")
    assert "greater than or equal to 1" in (page.text_content("#replay-rate-error") or "")

    page.check("#replay-dry")
    page.fill("#replay-rate", "")
    page.click("#replay-start")
    page.wait_for_selector("#replays li[data-state='completed']", timeout=20_000)
    assert page.get_attribute("#replays li[data-state='completed'] progress", "value") == "100"

    page.uncheck("#replay-dry")
    page.fill("#replay-rate", "1")  # one event a second: it stays running for the test
    page.fill("#replay-batch", "1")
    page.click("#replay-start")
    session = "#replays li[data-state='running']"
    page.wait_for_selector(session, timeout=20_000)
    session_id = page.get_attribute(session, "data-id")
    item = f"#replays li[data-id='{session_id}']"
    page.wait_for_function(f'document.querySelector("{item} progress").value > 0', timeout=20_000)
    page.click(f"{item} button[data-action='pause']")
    page.wait_for_selector(f"{item}[data-state='paused']")
    page.click(f"{item} button[data-action='resume']")
    page.wait_for_selector(f"{item}[data-state='running']")
    page.click(f"{item} button[data-action='cancel']")
    page.wait_for_selector(f"{item}[data-state='cancelled']")
    assert page.is_disabled(f"{item} button[data-action='resume']")
    page.close()


def test_limits_are_edited_with_errors_beside_their_fields(
    browser: Browser, live: LiveServer
) -> None:
    page = connected(browser, live)
    page.wait_for_selector("#limit-max_running")
    page.fill("#limit-max_running", "-1")
    page.fill("#limit-default_user_limits-rate_window_s", "0")
    page.click("#limits-save")
    page.wait_for_selector("#limit-max_running[aria-invalid='true']")
    assert "greater than or equal to 0" in (page.text_content("#limit-max_running-error") or "")
    assert "greater than 0" in (
        page.text_content("#limit-default_user_limits-rate_window_s-error") or ""
    )
    page.fill("#limit-max_running", "6")
    page.fill("#limit-default_user_limits-rate_window_s", "30")
    page.fill("#limits-new-user", "carol")
    page.click("#limits-add-user")
    page.fill("#limit-user_limits-carol-max_running", "1")
    page.click("#limits-save")
    page.wait_for_selector("#limits-message[data-kind='ok']")
    assert page.get_attribute("#limit-max_running", "aria-invalid") is None
    with live.client(live.admin_key) as admin:
        stored = admin.get("/api/v1/admin/limits").json()
    assert stored["max_running"] == 6
    assert stored["default_user_limits"]["rate_window_s"] == 30
    assert stored["user_limits"]["carol"]["max_running"] == 1
    page.close()


def test_keyboard_only_connects_and_reaches_every_control(
    browser: Browser, live: LiveServer
) -> None:
    page = browser.new_page()
    page.goto(live.url + "/dashboard")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    for _ in range(3):  # past the home link and the console link
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "adminkey"
    page.keyboard.type(live.admin_key)
    page.keyboard.press("Enter")
    page.wait_for_selector("#connection[data-state='ok']")
    page.wait_for_selector("#limit-max_running")
    reached = set()
    for _ in range(120):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id || document.activeElement.name"))
    assert {"letters-state", "replay-topic", "replay-start", "limit-max_running"} <= reached
    assert {"limits-save", "limits-add-user"} <= reached
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input, select, textarea, progress')]
        .filter(e => !e.labels?.length && !e.getAttribute('aria-label')).map(e => e.id)"""
    )
    assert unlabelled == []
    page.close()


CONTRAST = """(selector) => {
  const lum = (rgb) => {
    const [r, g, b] = rgb.match(/[0-9.]+/g).slice(0, 3).map(Number).map((v) => {
      const c = v / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  return [...document.querySelectorAll(selector)].map((el) => {
    const style = getComputedStyle(el);
    const ink = el instanceof SVGElement ? style.fill : style.color;
    let node = el;
    while (node && /rgba\\(0, 0, 0, 0\\)|transparent/.test(getComputedStyle(node).backgroundColor))
      node = node.parentElement;
    const ground = node ? getComputedStyle(node).backgroundColor : "rgb(255, 255, 255)";
    const [a, b] = [lum(ink), lum(ground)].sort((x, y) => y - x);
    return (a + 0.05) / (b + 0.05);
  });
}"""


def test_text_has_enough_contrast(browser: Browser, live: LiveServer) -> None:
    run(live, live.user_key, "out so the charts have labels")
    page = connected(browser, live)
    page.wait_for_selector("#status-chart svg .bar-label")
    text = (
        "h1, h2, th, .note, .figures, .field label, #connection, .axis, .bar-label,"
        " button:not(:disabled)"
    )
    ratios = page.evaluate(CONTRAST, text)
    assert ratios and min(ratios) >= 4.5, sorted(ratios)[:5]
    page.close()


def test_a_narrow_screen_stacks_the_cards_without_sideways_scrolling(
    browser: Browser, live: LiveServer
) -> None:
    live.poisoner.fixed = False
    letter = exhausted_letter(live, run(live, live.poison_key, "out a wide table row"))
    page = connected(browser, live, width=375)
    page.wait_for_selector(f"#letters tbody tr[data-id='{letter['id']}']")
    page.wait_for_selector("#status-chart svg")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    status = page.eval_on_selector("#status-chart", "e => e.getBoundingClientRect().x")
    lag = page.eval_on_selector("#lag-chart", "e => e.getBoundingClientRect().x")
    assert status == lag  # one column
    assert page.query_selector("[data-testid='dashboard'] svg") is not None
    page.close()


def test_the_page_needs_nothing_from_other_hosts_and_logs_no_error(
    browser: Browser, live: LiveServer
) -> None:
    page = browser.new_page()
    requested: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(live.url + "/dashboard")
    page.fill("#adminkey", live.admin_key)
    page.press("#adminkey", "Enter")
    page.wait_for_selector("#connection[data-state='ok']")
    assert requested and all(
        url.startswith(live.url) or url.startswith("data:") for url in requested
    )
    page.wait_for_timeout(2500)  # a poll after the first
    assert errors == []
    page.close()
