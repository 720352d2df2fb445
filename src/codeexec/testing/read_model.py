"""The ExecutionReadModel contract: what every read model must do, written once.

A test module subclasses `ExecutionReadModelContract` and provides the `new_read_model`
fixture: a factory of fresh, empty read models (each on storage of its own)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from eventsourcing.persistence import Tracking

from codeexec.domain.aggregate import Cause
from codeexec.domain.events import DomainEvent, RejectionReason, SlotReleased, derive_event_id
from codeexec.domain.execution import Execution
from codeexec.domain.model import RunResult, RunSpec, SandboxStatus, SourceFile
from codeexec.domain.saga import saga_id_for
from codeexec.ports.read_model import ExecutionQuery, ExecutionReadModel, SubmissionTotals

NewReadModel = Callable[[], ExecutionReadModel]
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Story:
    """Executions' events as the store would hand them over: positions in order."""

    def __init__(self) -> None:
        self.position = 0
        self.events: list[tuple[int, DomainEvent]] = []

    def at(self, seconds: float) -> Cause:
        return Cause(T0 + timedelta(seconds=seconds), uuid.uuid4(), None)

    def record(self, *executions: Execution) -> list[tuple[int, DomainEvent]]:
        new = []
        for execution in executions:
            for event in execution.collect_events():
                self.position += 1
                new.append((self.position, event))
        self.events += new
        return new

    def request(self, user: str, t: float = 0, language: str = "python") -> Execution:
        spec = RunSpec(language=language, files=(SourceFile(name="m", content=b"print(1)"),))
        execution = Execution.request(uuid.uuid4(), user, spec, self.at(t))
        return execution

    def finished(self, user: str, t: float = 0, language: str = "python") -> Execution:
        execution = self.request(user, t, language)
        execution.queue(self.at(t + 1), 1)
        execution.schedule(self.at(t + 2))
        execution.start(self.at(t + 3), "w1")
        execution.record_output(self.at(t + 4), "stdout", "héllo €\n".encode(), "run")
        result = RunResult(
            status=SandboxStatus.SUCCEEDED, exit_code=0, stdout="héllo €\n".encode(), stderr=b"\xff"
        )
        execution.finish(self.at(t + 5), result)
        return execution


def apply_all(model: ExecutionReadModel, events: list[tuple[int, DomainEvent]]) -> None:
    for position, event in events:
        model.apply(event, position)


class ExecutionReadModelContract:
    def test_a_lifecycle_folds_into_one_view(self, new_read_model: NewReadModel) -> None:
        model, story = new_read_model(), Story()
        execution = story.finished("alice")
        apply_all(model, story.record(execution))
        view = model.get(execution.id)
        assert view is not None
        assert (view.user_id, view.language, view.state, view.status) == (
            "alice",
            "python",
            "completed",
            "succeeded",
        )
        assert view.stdout == "héllo €\n".encode() and view.stderr == b"\xff"
        assert view.exit_code == 0 and view.events == 6 and view.version_seen == 6
        assert view.created_at == T0 and view.finished_at == T0 + timedelta(seconds=5)
        assert view.started_at == T0 + timedelta(seconds=3) and view.terminal
        assert view.seq == 1 and view.payload_bytes == 8
        assert model.get(uuid.uuid4()) is None

    def test_an_event_seen_before_changes_nothing(self, new_read_model: NewReadModel) -> None:
        model, story = new_read_model(), Story()
        execution = story.finished("alice")
        events = story.record(execution)
        apply_all(model, events)
        apply_all(model, events[:3])
        view = model.get(execution.id)
        assert view is not None and view.events == 6 and view.state == "completed"
        assert model.counts() == {"completed": 1}

    def test_saga_events_do_not_change_views(self, new_read_model: NewReadModel) -> None:
        model, story = new_read_model(), Story()
        execution = story.request("alice")
        apply_all(model, story.record(execution))
        saga_id = saga_id_for(execution.id)
        released = SlotReleased(
            event_id=derive_event_id(saga_id, 1),
            aggregate_id=saga_id,
            aggregate_version=1,
            execution_id=execution.id,
            user_id="alice",
            time=T0,
            correlation_id=execution.id,
        )
        assert model.apply(released, 99) is None
        view = model.get(execution.id)
        assert view is not None and view.events == 1

    def test_a_users_list_is_newest_first_in_pages(self, new_read_model: NewReadModel) -> None:
        model, story = new_read_model(), Story()
        mine = [story.request("alice", t) for t in range(7)]
        for n, execution in enumerate(mine):
            apply_all(model, story.record(execution, story.request("bob", n)))
        seen, cursor = [], None
        while True:
            page = model.list(ExecutionQuery(user_id="alice", cursor=cursor, limit=3))
            seen += [v.id for v in page.items]
            assert len(page.items) <= 3
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == [e.id for e in reversed(mine)]
        everyone = model.list(ExecutionQuery(limit=100)).items
        assert len(everyone) == 14 and [v.seq for v in everyone] == sorted(
            (v.seq for v in everyone), reverse=True
        )
        assert [v.id for v in model.list_all()][:2] == [mine[0].id, everyone[-2].id]

    def test_listing_order_is_the_stores_whatever_the_arrival(
        self, new_read_model: NewReadModel
    ) -> None:
        model, story = new_read_model(), Story()
        executions = [story.request("alice", t) for t in range(4)]
        events = story.record(*executions)
        apply_all(model, [events[2], events[0], events[3], events[1]])
        listed = model.list(ExecutionQuery(user_id="alice")).items
        assert [v.id for v in listed] == [e.id for e in reversed(executions)]

    def test_filters_by_status_language_and_time(self, new_read_model: NewReadModel) -> None:
        model, story = new_read_model(), Story()
        done = story.finished("alice", 0)
        queued = story.request("alice", 10, language="ruby")
        queued.queue(story.at(11), 1)
        rejected = story.request("alice", 20)
        rejected.reject(story.at(21), RejectionReason.RATE_LIMITED, "slow down")
        apply_all(model, story.record(done, queued, rejected))

        def ids(**query: object) -> list[uuid.UUID]:
            page = model.list(ExecutionQuery(user_id="alice", **query))  # type: ignore[arg-type]
            return [v.id for v in page.items]

        assert ids(statuses=frozenset({"succeeded"})) == [done.id]
        assert ids(statuses=frozenset({"completed", "queued"})) == [queued.id, done.id]
        assert ids(statuses=frozenset({"rejected"})) == [rejected.id]
        assert ids(language="ruby") == [queued.id]
        assert ids(created_after=T0) == [rejected.id, queued.id]
        assert ids(created_before=T0 + timedelta(seconds=20)) == [queued.id, done.id]
        assert ids(language="ruby", statuses=frozenset({"succeeded"})) == []
        assert model.list(ExecutionQuery(user_id="bob")).items == []

    def test_counts_follow_each_state(self, new_read_model: NewReadModel) -> None:
        model, story = new_read_model(), Story()
        assert model.counts() == {}
        first, second = story.request("a"), story.request("b")
        apply_all(model, story.record(first, second))
        assert model.counts() == {"requested": 2}
        first.queue(story.at(1), 1)
        apply_all(model, story.record(first))
        assert model.counts() == {"requested": 1, "queued": 1}
        first.cancel(story.at(2))
        second.reject(story.at(2), RejectionReason.QUEUE_FULL, "full")
        apply_all(model, story.record(first, second))
        assert model.counts() == {"cancelled": 1, "rejected": 1}

    def test_status_counts_split_finished_runs_by_their_status(
        self, new_read_model: NewReadModel
    ) -> None:
        model, story = new_read_model(), Story()
        assert model.status_counts() == {}
        done, waiting, refused = story.finished("a"), story.request("b"), story.request("c")
        apply_all(model, story.record(done, waiting, refused))
        assert model.status_counts() == {"succeeded": 1, "requested": 2}
        waiting.queue(story.at(1), 1)
        refused.reject(story.at(1), RejectionReason.QUEUE_FULL, "full")
        apply_all(model, story.record(waiting, refused))
        assert model.status_counts() == {"succeeded": 1, "queued": 1, "rejected": 1}
        assert model.counts() == {"completed": 1, "queued": 1, "rejected": 1}
        # Applying the same events again counts nothing twice.
        apply_all(model, story.events)
        assert model.status_counts() == {"succeeded": 1, "queued": 1, "rejected": 1}

    def test_recent_submissions_for_admission(self, new_read_model: NewReadModel) -> None:
        model, story = new_read_model(), Story()
        old, done = story.request("alice", -100), story.finished("alice", 0)
        refused = story.request("alice", 10)
        refused.reject(story.at(11), RejectionReason.RATE_LIMITED, "slow down")
        apply_all(model, story.record(old, done, refused, story.request("bob", 5)))
        recent = model.recent_submissions("alice", T0 - timedelta(seconds=1))
        assert [r.created_at for r in recent] == [T0, T0 + timedelta(seconds=10)]
        assert [r.counted for r in recent] == [True, False]
        assert recent[0].stored_bytes == 8 + len("héllo €\n".encode()) + 1

    def test_submission_totals_agree_with_the_submissions(
        self, new_read_model: NewReadModel
    ) -> None:
        model, story = new_read_model(), Story()
        old, done = story.request("alice", -100), story.finished("alice", 0)
        refused = story.request("alice", 10)
        refused.reject(story.at(11), RejectionReason.RATE_LIMITED, "slow down")
        apply_all(model, story.record(old, done, refused, story.request("bob", 5)))
        for rate_s, storage_s in ((-1, -1), (-200, -1), (-1, -200), (5, -200), (20, 20)):
            rate_since = T0 + timedelta(seconds=rate_s)
            storage_since = T0 + timedelta(seconds=storage_s)
            totals = model.submission_totals("alice", rate_since, storage_since)
            recent = model.recent_submissions("alice", min(rate_since, storage_since))
            assert totals.counted == sum(
                1 for r in recent if r.counted and r.created_at > rate_since
            )
            assert totals.stored_bytes == sum(
                r.stored_bytes for r in recent if r.created_at > storage_since
            )
        everything = model.submission_totals("alice", T0 - timedelta(1), T0 - timedelta(1))
        assert everything.counted == 2  # the old and the finished one, not the refused one
        assert model.submission_totals("carol", T0, T0).counted == 0

    def test_a_batch_and_its_tracking_are_applied_once(self, new_read_model: NewReadModel) -> None:
        model, story = new_read_model(), Story()
        assert model.tracked("projections/execution_events/0") == 0
        execution = story.finished("alice")
        events = story.record(execution)
        changed = model.apply_batch(events[:4], Tracking("projections/execution_events/0", 4))
        assert changed == [execution.id]
        assert model.tracked("projections/execution_events/0") == 4
        # Redelivered after a crash, overlapping: only what follows the tracking counts.
        changed = model.apply_batch(events, Tracking("projections/execution_events/0", 6))
        assert changed == [execution.id]
        view = model.get(execution.id)
        assert view is not None and view.events == 6 and view.state == "completed"
        assert model.apply_batch(events, Tracking("projections/execution_events/0", 6)) == []
        assert model.tracked("projections/execution_events/0") == 6
        assert model.tracked("projections/execution_events/1") == 0
        assert model.counts() == {"completed": 1}

    def test_a_poll_over_several_partitions_is_applied_once_per_partition(
        self, new_read_model: NewReadModel
    ) -> None:
        model, story = new_read_model(), Story()
        one, two = story.finished("alice"), story.finished("bob", 1)
        first, second = story.record(one), story.record(two)
        p0, p1 = "projections/execution_events/0", "projections/execution_events/1"
        model.apply_batch(first[:3], Tracking(p0, first[2][0]))  # p0 was partly applied
        changed = model.apply_partitions(
            [(first, Tracking(p0, first[-1][0])), (second, Tracking(p1, second[-1][0]))]
        )
        assert sorted(changed) == sorted([one.id, two.id])
        assert model.tracked(p0) == first[-1][0] and model.tracked(p1) == second[-1][0]
        for execution, events in ((one, first), (two, second)):
            view = model.get(execution.id)
            assert view is not None and view.events == len(events)
            assert view.state == "completed"
        # The same poll again (redelivered after a crash) changes nothing.
        again = [(first, Tracking(p0, first[-1][0])), (second, Tracking(p1, second[-1][0]))]
        assert model.apply_partitions(again) == []
        assert model.counts() == {"completed": 2}

    def test_a_batch_of_many_executions(self, new_read_model: NewReadModel) -> None:
        model, story = new_read_model(), Story()
        executions = [story.finished(f"u{n % 3}", n) for n in range(40)]
        model.apply_batch(story.record(*executions), Tracking("p", story.position))
        assert model.counts() == {"completed": 40}
        assert len(model.list(ExecutionQuery(user_id="u1", limit=100)).items) == 13
        assert model.tracked("p") == story.position


class SubmissionBoundContract:
    """For a read model that keeps each user's totals per minute (`submission_bound`), which
    admission then admits on: one that keeps none (None; in memory the exact count is as
    cheap, in Mongo a total beside a view could be lost in a crash) counts the windows and
    does not run these. T0 starts a minute."""

    def test_the_bound_sums_the_windows_from_the_minute_they_start_in(
        self, new_read_model: NewReadModel
    ) -> None:
        model, story = new_read_model(), Story()
        old, done = story.request("alice", -100), story.finished("alice", 0)  # 11:58:20, 12:00
        refused = story.request("alice", 10)
        apply_all(model, story.record(old, refused, story.request("bob", 5)))
        refused.reject(story.at(11), RejectionReason.RATE_LIMITED, "slow down")
        apply_all(model, story.record(done, refused))
        ever = T0 - timedelta(1)
        everything = model.submission_totals("alice", ever, ever)
        assert model.submission_bound("alice", ever, ever) == everything
        assert everything.counted == 2 and everything.stored_bytes > 0
        # From 12:00:05 and 11:58:20: whole minutes from 12:00 and 11:58, so the bound holds
        # `done` (not exactly in the rate window) and `old` (not exactly in the storage one).
        rate, storage = T0 + timedelta(seconds=5), T0 - timedelta(seconds=100)
        exact = model.submission_totals("alice", rate, storage)
        assert exact.counted == 0 and exact.stored_bytes < everything.stored_bytes
        assert model.submission_bound("alice", rate, storage) == SubmissionTotals(
            1, everything.stored_bytes
        )
        later = T0 + timedelta(seconds=60)  # the next minute: nothing of alice's in it
        assert model.submission_bound("alice", later, later) == SubmissionTotals(0, 0)
        assert model.submission_bound("carol", ever, ever) == SubmissionTotals(0, 0)
        # Redelivered, nothing changes.
        apply_all(model, story.events)
        assert model.submission_bound("alice", ever, ever) == everything
        assert model.submission_bound("alice", rate, storage) == SubmissionTotals(
            1, everything.stored_bytes
        )
