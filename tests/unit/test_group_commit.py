"""Group commit in the store thread: calls waiting together share one turn and one commit,
each caller gets its own result or error, and nobody hears back before the commit."""

from __future__ import annotations

import asyncio
import threading

import pytest

from codeexec.ports.store_turn import StoreTurn, current_turn
from codeexec.service.store_thread import TURN_CALLS, StoreBusy, StoreThread


class Journal:
    """A datastore in memory that joins turns as the SQL ones do: writes of a turn are
    pending until the turn commits; a write that raises leaves nothing (its savepoint)."""

    def __init__(self, fail_commit: bool = False) -> None:
        self.fail_commit = fail_commit
        self.committed: list[str] = []
        self.pending: list[str] = []
        self.commits = 0
        self.joined = False

    def write(self, entry: str) -> str:
        turn = current_turn()
        if turn is None:
            self.committed.append(entry)
            self.commits += 1
            return entry
        if not self.joined:
            turn.join(self)
            self.joined = True
        if entry.startswith("conflict"):
            raise ValueError(f"{entry}: already recorded")  # rolled back alone
        self.pending.append(entry)
        if entry.startswith("commit"):  # commits the turn so far, as PostgreSQL's inserts do
            self.committed += self.pending
            self.pending = []
            self.commits += 1
            turn.checkpoint()
        else:
            turn.wrote()
        return entry

    def end_turn(self, commit: bool) -> None:
        self.joined = False
        pending, self.pending = self.pending, []
        if commit and self.fail_commit:
            raise OSError("disk full")
        if commit:
            self.committed += pending
            self.commits += 1


async def hold(io: StoreThread) -> tuple[threading.Event, asyncio.Future[bool]]:
    """Occupy the store thread so that the calls queued next wait together."""
    started, release = threading.Event(), threading.Event()

    def blocking() -> bool:
        started.set()
        return release.wait()

    blocker = asyncio.ensure_future(io.run(blocking))
    await asyncio.to_thread(started.wait)
    return release, blocker


async def test_waiting_calls_share_one_commit_and_each_caller_gets_its_own_answer() -> None:
    io = StoreThread(busy_timeout_s=30, turn_s=10)
    journal = Journal()
    try:
        release, blocker = await hold(io)
        calls = [asyncio.ensure_future(io.run(journal.write, f"e{n}")) for n in range(5)]
        conflict = asyncio.ensure_future(io.run(journal.write, "conflict-key"))
        after = asyncio.ensure_future(io.run(journal.write, "e5"))
        await asyncio.sleep(0.01)
        release.set()
        assert await blocker
        assert await asyncio.gather(*calls, after) == ["e0", "e1", "e2", "e3", "e4", "e5"]
        with pytest.raises(ValueError, match="already recorded"):
            await conflict  # failed alone: the calls before and after it are recorded
        assert journal.committed == ["e0", "e1", "e2", "e3", "e4", "e5"]
        assert journal.commits == 1
    finally:
        await io.close()


async def test_a_caller_hears_back_only_after_the_turn_committed() -> None:
    io = StoreThread(busy_timeout_s=30, turn_s=10)
    journal = Journal()
    try:
        release, blocker = await hold(io)
        calls = [asyncio.ensure_future(io.run(journal.write, f"e{n}")) for n in range(3)]
        await asyncio.sleep(0.01)
        release.set()
        for call in asyncio.as_completed(calls):
            entry = await call
            assert entry in journal.committed  # durable before it was answered
        await blocker
    finally:
        await io.close()


async def test_a_failed_commit_fails_every_call_of_the_turn_and_undoes_their_effects() -> None:
    io = StoreThread(busy_timeout_s=30, turn_s=10)
    journal = Journal(fail_commit=True)
    posted: list[str] = []
    undone: list[str] = []

    def write_and_post(entry: str) -> str:
        journal.write(entry)
        io.call_soon(posted.append, entry)  # would act on what is not recorded
        turn = current_turn()
        assert turn is not None
        turn.on_abort(lambda: undone.append(entry))
        return entry

    try:
        release, blocker = await hold(io)
        calls = [asyncio.ensure_future(io.run(write_and_post, f"e{n}")) for n in range(3)]
        await asyncio.sleep(0.01)
        release.set()
        for call in [blocker, *calls]:  # the blocker's turn took the waiting calls
            with pytest.raises(StoreBusy, match="disk full"):
                await call
        assert journal.committed == [] and posted == []
        assert undone == ["e0", "e1", "e2"]
        journal.fail_commit = False
        assert await io.run(write_and_post, "again") == "again"  # the next turn is fresh
        assert journal.committed == ["again"] and posted == ["again"]
    finally:
        await io.close()


async def test_requests_still_go_first_within_a_turn() -> None:
    io = StoreThread(busy_timeout_s=30, turn_s=10)
    journal = Journal()
    try:
        release, blocker = await hold(io)
        background = asyncio.ensure_future(io.run(journal.write, "background"))
        await asyncio.sleep(0)
        request = asyncio.ensure_future(io.ask(journal.write, "request"))
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(blocker, background, request)
        assert journal.committed == ["request", "background"]
    finally:
        await io.close()


async def test_a_turn_takes_at_most_turn_calls_calls() -> None:
    io = StoreThread(busy_timeout_s=30, turn_calls=2, turn_s=10)
    journal = Journal()
    try:
        release, blocker = await hold(io)
        calls = [asyncio.ensure_future(io.run(journal.write, f"e{n}")) for n in range(4)]
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(blocker, *calls)
        assert journal.committed == ["e0", "e1", "e2", "e3"]
        assert journal.commits == 3  # (blocker, e0), (e1, e2), (e3)
    finally:
        await io.close()


async def test_requests_too_are_taken_at_most_turn_calls_a_turn() -> None:
    io = StoreThread(busy_timeout_s=30, turn_calls=2, turn_s=10)
    journal = Journal()
    try:
        release, blocker = await hold(io)
        calls = [asyncio.ensure_future(io.ask(journal.write, f"r{n}")) for n in range(4)]
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(blocker, *calls)
        assert journal.committed == ["r0", "r1", "r2", "r3"]
        assert journal.commits == 3  # (blocker, r0), (r1, r2), (r3)
    finally:
        await io.close()


async def test_closing_runs_the_last_call_after_the_calls_before_it_committed() -> None:
    io = StoreThread(busy_timeout_s=30, turn_s=10)
    journal = Journal()
    seen: list[list[str]] = []
    release, blocker = await hold(io)
    calls = [asyncio.ensure_future(io.run(journal.write, f"e{n}")) for n in range(3)]
    closing = asyncio.ensure_future(io.close(lambda: seen.append(list(journal.committed))))
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(blocker, *calls, closing)
    assert seen == [["e0", "e1", "e2"]]  # closing the store never takes a turn's writes


async def test_one_call_per_turn_turns_group_commit_off() -> None:
    io = StoreThread(busy_timeout_s=30, turn_calls=1)
    try:
        assert await io.run(current_turn) is None  # each transaction commits on its own
    finally:
        await io.close()
    grouping = StoreThread(busy_timeout_s=30)
    try:
        assert isinstance(await grouping.run(current_turn), StoreTurn)
    finally:
        await grouping.close()


async def test_a_bad_turn_setting_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TURN_CALLS, "many")
    with pytest.raises(ValueError, match="CODEEXEC_STORE_TURN_CALLS must be a number"):
        StoreThread(busy_timeout_s=30)
    monkeypatch.setenv(TURN_CALLS, "0")
    with pytest.raises(ValueError, match="at least 1"):
        StoreThread(busy_timeout_s=30)


async def test_a_checkpoint_keeps_the_answers_of_the_calls_it_committed() -> None:
    """A datastore that commits the turn's transaction before the turn ends (PostgreSQL,
    with each insert of events): if the turn's own commit then fails, only the calls that
    wrote since the checkpoint fail and have their effects undone; the others were
    recorded, and get their answers and what they posted."""
    io = StoreThread(busy_timeout_s=30, turn_s=10)
    journal = Journal(fail_commit=True)
    posted: list[str] = []
    undone: list[str] = []

    def write_and_post(*entries: str) -> str:
        for entry in entries:
            journal.write(entry)
            turn = current_turn()
            assert turn is not None
            if turn.unsaved:  # as `ExecutionStore.record` does
                turn.on_abort(lambda entry=entry: undone.append(entry))  # type: ignore[misc]
        io.call_soon(posted.append, entries[-1])
        return entries[-1]

    try:
        release, blocker = await hold(io)
        calls = [
            asyncio.ensure_future(io.run(write_and_post, *entries))
            for entries in (("e0",), ("commit1",), ("e2",), ("commit3", "e4"), ("e5",))
        ]
        await asyncio.sleep(0.01)
        release.set()
        assert await blocker
        assert [await call for call in calls[:2]] == ["e0", "commit1"]
        for call in calls[2:]:
            with pytest.raises(StoreBusy, match="disk full"):
                await call
        assert journal.committed == ["e0", "commit1", "e2", "commit3"]
        assert posted == ["e0", "commit1"]
        assert undone == ["e4", "e5"]  # registered since the checkpoint: e4 was not recorded
    finally:
        await io.close()
