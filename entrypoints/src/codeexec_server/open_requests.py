"""Bounds on requests in progress: accepting submissions (all users), and the long-lived ones
(waiting for a result, event streams) per user, so one user's load never refuses another's."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from starlette.types import Receive

from codeexec_server.problems import ApiProblem
from codeexec_server.settings import ServerSettings

T = TypeVar("T")


@dataclass
class UserSlots:
    """Counts held slots per user, and per (user, key) when `per_key` is set. Over a bound
    answers 429 naming it, before the request does anything."""

    what: str
    per_user: int
    setting: str  # the ServerSettings field; its variable is CODEEXEC_ + its upper case
    per_key: int = 0
    key_setting: str = ""
    by_user: Counter[str] = field(default_factory=Counter)
    by_key: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_user.values())

    def take(self, user: str, key: str | None = None) -> Callable[[], None]:
        """Take a slot (or raise the 429); returns the function that gives it back."""
        if self.by_user[user] >= self.per_user:
            raise self._refusal(f"{self.per_user} per user", self.setting)
        if key is not None and self.per_key and self.by_key[(user, key)] >= self.per_key:
            raise self._refusal(f"{self.per_key} per Idempotency-Key", self.key_setting)
        self.by_user[user] += 1
        if key is not None:
            self.by_key[(user, key)] += 1
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                # Subtracting drops zero counts: users who come and go leave nothing behind.
                self.by_user -= Counter({user: 1})
                if key is not None:
                    self.by_key -= Counter({(user, key): 1})

        return give_back

    @contextmanager
    def hold(self, user: str, key: str | None = None) -> Iterator[None]:
        give_back = self.take(user, key)
        try:
            yield
        finally:
            give_back()

    def _refusal(self, bound: str, setting: str) -> ApiProblem:
        return ApiProblem(
            429,
            f"too many {self.what}: at most {bound} (CODEEXEC_{setting.upper()})",
            headers={"Retry-After": "1"},
            limit=setting,
        )


class OpenRequests:
    """The server's bounds on requests in progress (see ServerSettings)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.max_accepting = settings.max_inflight_submissions
        self.accepting = 0
        self.waiters = UserSlots(
            "submissions waiting for a result",
            settings.max_waiters_per_user,
            "max_waiters_per_user",
            settings.max_waiters_per_key,
            "max_waiters_per_key",
        )
        self.streams = UserSlots(
            "open event streams", settings.max_streams_per_user, "max_streams_per_user"
        )

    @contextmanager
    def accepting_one(self) -> Iterator[None]:
        """The short accept path (validate, record): overload answers 503, never hangs."""
        if self.accepting >= self.max_accepting:
            raise ApiProblem(
                503, "too many submissions being accepted; retry", headers={"Retry-After": "1"}
            )
        self.accepting += 1
        try:
            yield
        finally:
            self.accepting -= 1


async def client_gone(receive: Receive) -> None:
    """Returns once the client disconnects. Only for a request whose body was read: then the
    next ASGI message can only be the disconnect."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_gone(receive: Receive, work: Awaitable[T]) -> T | None:
    """`work`'s result, or None as soon as the client disconnects (the work is cancelled:
    nothing keeps waiting for a socket that closed)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(client_gone(receive))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, gone):
            pending.cancel()
        await asyncio.gather(task, gone, return_exceptions=True)
    if task.cancelled():
        return None
    return task.result()
