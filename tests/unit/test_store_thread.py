"""The store thread: store calls leave the event loop free, requests are bounded and go first."""

from __future__ import annotations

import asyncio
import threading

import pytest
from eventsourcing.persistence import OperationalError

from codeexec.service.store_thread import StoreBusy, StoreThread
from tests.unit.factories import eventually, runtime, script


async def hold(io: StoreThread, release: threading.Event) -> asyncio.Future[bool]:
    """Occupy the store thread until `release` is set; returns once it is occupied."""
    started = threading.Event()

    def blocking() -> bool:
        started.set()
        return release.wait()

    blocker = asyncio.ensure_future(io.run(blocking))
    await asyncio.to_thread(started.wait)
    return blocker


async def test_a_blocked_store_call_leaves_the_event_loop_free() -> None:
    io = StoreThread(busy_timeout_s=30)
    release = threading.Event()
    try:
        blocked = await hold(io, release)
        ticks = 0
        for _ in range(3):
            await asyncio.sleep(0)
            ticks += 1
        assert ticks == 3 and not blocked.done()
        release.set()
        assert await blocked is True
    finally:
        release.set()
        await io.close()


async def test_a_request_that_does_not_get_its_turn_is_refused_and_never_runs() -> None:
    io = StoreThread(busy_timeout_s=0.05)
    release = threading.Event()
    ran: list[str] = []
    try:
        blocker = await hold(io, release)
        with pytest.raises(StoreBusy) as busy:
            await io.ask(ran.append, "request")
        assert busy.value.retry_after == "1"
        release.set()
        await blocker
        await io.run(ran.append, "after")
        assert ran == ["after"]  # the refused request was dropped, not run late
    finally:
        release.set()
        await io.close()


async def test_requests_go_before_the_roles_background_work() -> None:
    io = StoreThread(busy_timeout_s=30)
    release = threading.Event()
    order: list[str] = []
    try:
        blocker = await hold(io, release)
        background = asyncio.ensure_future(io.run(order.append, "background"))
        await asyncio.sleep(0)
        request = asyncio.ensure_future(io.ask(order.append, "request"))
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(blocker, background, request)
        assert order == ["request", "background"]
    finally:
        release.set()
        await io.close()


async def test_a_locked_store_raises_store_busy_and_other_errors_pass_through() -> None:
    io = StoreThread(busy_timeout_s=30)

    def locked() -> None:
        raise OperationalError("database is locked")

    def broken() -> None:
        raise ValueError("a bug")

    try:
        with pytest.raises(StoreBusy, match="database is locked"):
            await io.ask(locked)
        with pytest.raises(StoreBusy):
            await io.run(locked)
        with pytest.raises(ValueError, match="a bug"):
            await io.run(broken)
    finally:
        await io.close()


async def test_close_runs_the_last_call_after_everything_queued() -> None:
    io = StoreThread(busy_timeout_s=30)
    order: list[str] = []
    queued = asyncio.ensure_future(io.run(order.append, "queued"))
    await asyncio.sleep(0)
    await io.close(lambda: order.append("last"))
    await queued
    assert order == ["queued", "last"]


async def test_concurrent_repeats_of_an_idempotency_key_record_one_execution() -> None:
    # Store calls now leave the event loop: load-then-record must still be one step.
    async with runtime() as cx:
        views = await asyncio.gather(
            *(cx.submit("alice", script("out x"), idempotency_key="k") for _ in range(20))
        )
        assert len({view.id for view in views}) == 1
        await eventually(lambda: len(cx.list_all()) == 1)
        await asyncio.sleep(0.05)  # and no second one follows
        assert len(cx.list_all()) == 1


async def test_inline_calls_run_at_once_and_what_they_post_runs_before_the_caller_resumes() -> None:
    io = StoreThread(busy_timeout_s=30, inline=True)
    order: list[str] = []

    def call() -> str:
        io.call_soon(order.append, "posted")
        order.append("call")
        return "result"

    def locked() -> None:
        raise OperationalError("database is locked")

    assert await io.run(call) == "result"
    assert order == ["call", "posted"]
    with pytest.raises(StoreBusy):
        await io.ask(locked)
    await io.close()
