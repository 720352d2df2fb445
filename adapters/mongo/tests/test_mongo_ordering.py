"""The notification log under concurrent writers: commit order, no event skipped or repeated,
optimistic concurrency between writers, and abandoned positions fenced off."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent, Tracking
from eventsourcing.utils import Environment
from mongo_fixtures import mongo_env_fixture, mongo_server_fixture  # noqa: F401  (fixtures)

from codeexec_mongo import CommitLog, MongoApplicationRecorder, MongoFactory, MongoProcessRecorder

WRITER = Path(__file__).with_name("mongo_writer.py")


def recorder_of(env: dict[str, str], **extra: str) -> tuple[MongoFactory, MongoProcessRecorder]:
    factory = MongoFactory(Environment(env={**env, **extra}))
    recorder = factory.process_recorder()
    assert isinstance(recorder, MongoProcessRecorder)
    return factory, recorder


def event(aggregate: uuid.UUID, version: int, state: bytes = b"{}") -> StoredEvent:
    return StoredEvent(aggregate, version, "topic", state)


def test_writer_processes_and_a_live_reader_see_every_event_once_in_commit_order(
    mongo_env: dict[str, str],
) -> None:
    factory, reader = recorder_of(mongo_env, MONGO_GAP_TIMEOUT_S="30")
    where = [mongo_env["MONGO_URL"], mongo_env["MONGO_DB"]]
    writers = [
        subprocess.Popen([sys.executable, str(WRITER), *where, str(w), "60"]) for w in range(4)
    ]
    seen: list[Notification] = []

    def read_on() -> list[Notification]:
        page = reader.select_notifications((seen[-1].id if seen else 0) + 1, 7)  # small pages
        seen.extend(page)
        return list(page)

    try:
        while any(w.poll() is None for w in writers):
            read_on()
        while read_on():  # the writers are done: what is left
            pass
    finally:
        for w in writers:
            w.wait(120)
    assert [w.returncode for w in writers] == [0, 0, 0, 0]
    final = list(reader.select_notifications(1, 100_000))
    assert [n.state for n in seen] == [n.state for n in final]  # read live == read after
    assert [n.id for n in final] == list(range(1, len(final) + 1))  # no write failed here
    states = [n.state for n in final]
    assert len(set(states)) == len(states)
    writes = {s.rsplit(b":", 1)[0] for s in states}
    assert len(writes) == 4 * 60
    for number in range(4):
        assert reader.max_tracking_id(f"upstream-{number}") == 60
    factory.close()


def test_two_writers_saving_the_same_version_exactly_one_wins(mongo_env: dict[str, str]) -> None:
    one, first = recorder_of(mongo_env)
    two, second = recorder_of(mongo_env)
    for _ in range(20):
        aggregate = uuid.uuid4()
        outcomes = race(aggregate, first, second)
        assert sorted(outcomes) == ["conflict", "won"]
        assert len(first.select_events(aggregate)) == 1
    one.close()
    two.close()


def race(aggregate: uuid.UUID, *recorders: MongoApplicationRecorder) -> list[str]:
    """Each recorder saves version 1 of `aggregate` at once, from a thread of its own."""
    start = threading.Barrier(len(recorders))
    outcomes: list[str] = []

    def save(recorder: MongoApplicationRecorder) -> None:
        start.wait()
        try:
            recorder.insert_events([event(aggregate, 1)])
            outcomes.append("won")
        except IntegrityError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(r,)) for r in recorders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


class HeldCommitLog(CommitLog):
    """Waits for `release` between claiming its positions and committing them."""

    release = threading.Event()
    claimed = threading.Event()

    def _commit(self, first: int, last: int, tracking: Tracking | None) -> bool:
        if not self.release.is_set():
            self.claimed.set()
            self.release.wait(30)
        return super()._commit(first, last, tracking)


def test_a_reader_waits_at_a_gap_then_fences_it_and_the_late_write_moves_after(
    mongo_env: dict[str, str],
) -> None:
    factory, writer = recorder_of(mongo_env, MONGO_GAP_TIMEOUT_S="0.3")
    _, reader = recorder_of(mongo_env, MONGO_GAP_TIMEOUT_S="0.3")
    writer.insert_events([event(uuid.uuid4(), 1, b"one")])
    slow, slow_writer = recorder_of(mongo_env, MONGO_GAP_TIMEOUT_S="0.3")
    slow_writer.log.__class__ = HeldCommitLog
    late = uuid.uuid4()
    thread = threading.Thread(target=slow_writer.insert_events, args=([event(late, 1, b"late")],))
    thread.start()
    assert HeldCommitLog.claimed.wait(10)
    writer.insert_events([event(uuid.uuid4(), 1, b"three")])  # position 3, beyond the gap
    assert [n.state for n in reader.select_notifications(1, 10)] == [b"one"]  # waits at 2
    deadline = threading.Event()
    while [n.state for n in reader.select_notifications(2, 10)] != [b"three"]:
        assert not deadline.wait(0.05) and thread.is_alive()
    HeldCommitLog.release.set()  # the held write now finds position 2 fenced: it moves on
    thread.join(10)
    notes = reader.select_notifications(1, 10)
    assert [(n.id, n.state) for n in notes] == [(1, b"one"), (3, b"three"), (4, b"late")]
    assert [e.state for e in reader.select_events(late)] == [b"late"]
    assert reader.max_notification_id() == 4
    factory.close()
    slow.close()


def test_a_write_abandoned_by_a_dead_writer_does_not_block_its_aggregate(
    mongo_env: dict[str, str],
) -> None:
    factory, recorder = recorder_of(mongo_env, MONGO_GAP_TIMEOUT_S="0.2")
    log = recorder.log
    aggregate = uuid.uuid4()
    first = log._allocate(1)  # a writer that claims its event and dies before committing
    log._claim([event(aggregate, 1, b"dead")], [f"{aggregate}:1"], first, first)
    assert recorder.select_events(aggregate) == []  # a claim is not a record
    recorder.insert_events([event(aggregate, 1, b"alive")])  # waits out the claim, fences it
    assert [e.state for e in recorder.select_events(aggregate)] == [b"alive"]
    assert [(n.id, n.state) for n in recorder.select_notifications(1, 10)] == [(2, b"alive")]
    with pytest.raises(IntegrityError):
        recorder.insert_events([event(aggregate, 1, b"again")])
    factory.close()
