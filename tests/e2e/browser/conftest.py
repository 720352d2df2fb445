"""The console's browser tests: a real local-sandbox server, a fresh user per test (so a
test sees only its own history) and the console opened with that user's key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.browser_fixtures import console_server, fresh_user, open_console
from tests.e2e.conftest import Server

__all__ = ["console_server"]


@pytest.fixture
def user_key(console_server: Server) -> str:
    return fresh_user(console_server)


@pytest.fixture
def page(browser: Browser, console_server: Server, user_key: str) -> Iterator[Page]:
    opened = open_console(browser, console_server, user_key)
    yield opened
    opened.context.close()
