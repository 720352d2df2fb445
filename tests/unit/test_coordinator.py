"""Coordinator policy: rate limits, caps, priorities with aging, cancel/release, restore."""

from __future__ import annotations

from uuid import UUID

import pytest

from codeexec.domain.coordinator import (
    Coordinator,
    CoordinatorConfig,
    Dequeued,
    Queued,
    Rejected,
    Scheduled,
    UserLimits,
)
from codeexec.domain.events import RejectionReason

GENEROUS = UserLimits(rate_limit=1_000_000, max_running=1_000_000, max_queued=1_000_000)


def uid(n: int) -> UUID:
    return UUID(int=n)


def config(
    *,
    max_running: int = 100,
    max_queue: int = 1000,
    aging_interval_s: float = 10.0,
    rate_limit: int = 1000,
    rate_window_s: float = 60.0,
    user_running: int = 100,
    user_queued: int = 1000,
    overrides: dict[str, UserLimits] | None = None,
) -> CoordinatorConfig:
    return CoordinatorConfig(
        max_running=max_running,
        max_queue=max_queue,
        aging_interval_s=aging_interval_s,
        default_user_limits=UserLimits(rate_limit, rate_window_s, user_running, user_queued),
        user_limits=overrides or {},
    )


def reason(answer: Rejected | Queued) -> RejectionReason | None:
    return answer.reason if isinstance(answer, Rejected) else None


def scheduled_ids(coordinator: Coordinator, now: float) -> list[UUID]:
    return [s.execution_id for s in coordinator.schedule(now)]


# --- rate limit --------------------------------------------------------------------------


def test_rate_limit_rejects_submissions_over_the_limit_with_a_message_naming_it() -> None:
    c = Coordinator(config(rate_limit=2, rate_window_s=60))
    assert isinstance(c.submit(uid(1), "ann", 0, now=0), Queued)
    assert isinstance(c.submit(uid(2), "ann", 0, now=1), Queued)
    rejected = c.submit(uid(3), "ann", 0, now=2)
    assert rejected == Rejected(
        uid(3), RejectionReason.RATE_LIMITED, "rate limit of 2 per 60s exceeded"
    )
    assert not c.is_queued(uid(3))


def test_rate_limit_window_slides() -> None:
    c = Coordinator(config(rate_limit=2, rate_window_s=60))
    c.submit(uid(1), "ann", 0, now=0)
    c.submit(uid(2), "ann", 0, now=30)
    assert isinstance(c.submit(uid(3), "ann", 0, now=59.9), Rejected)
    assert isinstance(c.submit(uid(4), "ann", 0, now=60), Queued)  # the one at 0 slid out
    assert isinstance(c.submit(uid(5), "ann", 0, now=89), Rejected)
    assert isinstance(c.submit(uid(6), "ann", 0, now=90), Queued)


def test_rate_limit_is_per_user() -> None:
    c = Coordinator(config(rate_limit=1))
    assert isinstance(c.submit(uid(1), "ann", 0, now=0), Queued)
    assert isinstance(c.submit(uid(2), "bob", 0, now=0), Queued)


def test_rejected_submissions_do_not_count_toward_the_rate_window() -> None:
    c = Coordinator(config(rate_limit=2, user_queued=1))
    c.submit(uid(1), "ann", 0, now=0)
    assert reason(c.submit(uid(2), "ann", 0, now=1)) == RejectionReason.QUEUE_FULL
    c.schedule(now=2)
    assert isinstance(c.submit(uid(3), "ann", 0, now=3), Queued)


def test_per_user_override_replaces_default_limits() -> None:
    c = Coordinator(config(rate_limit=1, overrides={"vip": GENEROUS}))
    for n in range(50):
        assert isinstance(c.submit(uid(n), "vip", 0, now=0), Queued)
    c.submit(uid(100), "ann", 0, now=0)
    assert isinstance(c.submit(uid(101), "ann", 0, now=0), Rejected)


# --- queue capacity ----------------------------------------------------------------------


def test_queue_full_per_user() -> None:
    c = Coordinator(config(user_queued=2))
    c.submit(uid(1), "ann", 0, now=0)
    c.submit(uid(2), "ann", 0, now=0)
    assert c.submit(uid(3), "ann", 0, now=0) == Rejected(
        uid(3), RejectionReason.QUEUE_FULL, "per-user queue limit of 2 reached"
    )
    assert isinstance(c.submit(uid(4), "bob", 0, now=0), Queued)


def test_queue_full_globally() -> None:
    c = Coordinator(config(max_queue=2))
    c.submit(uid(1), "ann", 0, now=0)
    c.submit(uid(2), "bob", 0, now=0)
    assert c.submit(uid(3), "cid", 0, now=0) == Rejected(
        uid(3), RejectionReason.QUEUE_FULL, "queue capacity of 2 reached"
    )


def test_queued_reports_the_queue_depth() -> None:
    c = Coordinator(config())
    assert c.submit(uid(1), "ann", 0, now=0) == Queued(uid(1), 1)
    assert c.submit(uid(2), "bob", 0, now=0) == Queued(uid(2), 2)


def test_priority_out_of_range_is_rejected_as_invalid() -> None:
    c = Coordinator(config())
    assert reason(c.submit(uid(1), "ann", 10, now=0)) == RejectionReason.INVALID
    assert reason(c.submit(uid(2), "ann", -1, now=0)) == RejectionReason.INVALID
    assert c.status().queued == 0


def test_duplicate_submit_answers_queued_again_without_double_counting() -> None:
    c = Coordinator(config(rate_limit=2))
    c.submit(uid(1), "ann", 0, now=0)
    assert c.submit(uid(1), "ann", 0, now=0) == Queued(uid(1), 1)
    assert c.status().queued == 1
    c.schedule(now=0)
    assert c.submit(uid(1), "ann", 0, now=0) == Queued(uid(1), 0)  # running: still the same
    assert c.status().running == 1
    assert isinstance(c.submit(uid(2), "ann", 0, now=0), Queued)  # the duplicate cost nothing


def test_resubmitting_a_released_or_cancelled_execution_is_rejected_so_it_never_runs_twice() -> (
    None
):
    c = Coordinator(config())
    c.submit(uid(1), "ann", 0, now=0)
    c.submit(uid(2), "ann", 0, now=0)
    c.schedule(now=0)
    c.release(uid(1))
    c.submit(uid(3), "ann", 0, now=0)
    c.cancel(uid(3))
    for n in (1, 3):
        answer = c.submit(uid(n), "ann", 0, now=1)
        assert isinstance(answer, Rejected) and answer.reason == RejectionReason.INVALID


# --- scheduling --------------------------------------------------------------------------


def test_higher_priority_is_scheduled_first() -> None:
    c = Coordinator(config(max_running=1))
    c.submit(uid(1), "ann", 1, now=0)
    c.submit(uid(2), "bob", 7, now=0)
    assert c.schedule(now=0) == [Scheduled(uid(2), "bob")]


def test_fifo_within_a_priority_even_with_equal_timestamps() -> None:
    c = Coordinator(config())
    for n, user in enumerate(["ann", "bob", "ann", "cid", "bob"]):
        c.submit(uid(n), user, 3, now=5.0)
    assert scheduled_ids(c, now=5.0) == [uid(n) for n in range(5)]


def test_a_clock_stepping_back_does_not_make_a_later_submission_look_older() -> None:
    c = Coordinator(config(max_running=1, aging_interval_s=10))
    c.submit(uid(1), "ann", 0, now=10)
    c.schedule(now=10)
    c.submit(uid(2), "bob", 0, now=0)  # clock went back: counts as enqueued at 10
    c.submit(uid(3), "cid", 1, now=10)
    c.release(uid(1))
    # at 20 bob's entry has aged one step (not two) and so trails cid's priority 1 + 1
    assert scheduled_ids(c, now=20) == [uid(3)]


def test_global_running_cap_is_never_exceeded() -> None:
    c = Coordinator(config(max_running=3))
    for n in range(10):
        c.submit(uid(n), f"user{n}", 0, now=0)
    assert len(c.schedule(now=0)) == 3
    assert c.schedule(now=1) == []
    assert c.status().running == 3


def test_user_at_its_running_cap_does_not_block_other_users() -> None:
    c = Coordinator(config(max_running=10, user_running=2))
    for n in range(5):
        c.submit(uid(n), "ann", 9, now=0)  # ann is first and most urgent
    c.submit(uid(10), "bob", 0, now=1)
    assert scheduled_ids(c, now=1) == [uid(0), uid(1), uid(10)]
    assert c.status().running_by_user == {"ann": 2, "bob": 1}


def test_aging_lets_an_old_low_priority_entry_overtake() -> None:
    c = Coordinator(config(max_running=1, aging_interval_s=10))
    c.submit(uid(1), "ann", 0, now=0)
    c.submit(uid(2), "bob", 3, now=30)
    # at 39 ann's entry has aged 3 steps, bob's none: a tie, and ann's is older
    assert scheduled_ids(c, now=39) == [uid(1)]


def test_aging_is_not_enough_before_the_interval_elapses() -> None:
    c = Coordinator(config(max_running=1, aging_interval_s=10))
    c.submit(uid(1), "ann", 0, now=0)
    c.submit(uid(2), "bob", 3, now=0)
    assert scheduled_ids(c, now=29.9) == [uid(2)]


def test_release_frees_a_slot_for_the_next_execution() -> None:
    c = Coordinator(config(max_running=1))
    c.submit(uid(1), "ann", 0, now=0)
    c.submit(uid(2), "ann", 0, now=0)
    c.schedule(now=0)
    assert c.schedule(now=1) == []
    c.release(uid(1))
    assert not c.is_running(uid(1))
    assert scheduled_ids(c, now=1) == [uid(2)]


def test_release_is_idempotent_and_ignores_unknown_ids() -> None:
    c = Coordinator(config(max_running=2))
    for n in range(3):
        c.submit(uid(n), "ann", 0, now=0)
    c.schedule(now=0)
    c.release(uid(0))
    c.release(uid(0))
    c.release(uid(99))
    assert c.status().running == 1
    assert scheduled_ids(c, now=0) == [uid(2)]


def test_release_of_a_queued_execution_drops_it_because_it_ended_without_running() -> None:
    c = Coordinator(config(max_running=0))
    c.submit(uid(1), "ann", 0, now=0)
    c.release(uid(1))
    assert not c.is_queued(uid(1))
    c.restore_queued(uid(1), "ann", 0, 0.0)  # redelivered afterwards: stays finished
    c.restore_scheduled(uid(1), "ann")
    assert c.status().queued == c.status().running == 0


def test_release_of_a_user_at_cap_lets_its_other_entries_run() -> None:
    c = Coordinator(config(user_running=1))
    for n, priority in enumerate([5, 2, 8]):
        c.submit(uid(n), "ann", priority, now=0)
    assert scheduled_ids(c, now=0) == [uid(2)]
    c.release(uid(2))
    assert scheduled_ids(c, now=0) == [uid(0)]
    c.release(uid(0))
    assert scheduled_ids(c, now=0) == [uid(1)]


def test_cancel_removes_a_queued_execution() -> None:
    c = Coordinator(config(max_running=1))
    for n in range(3):
        c.submit(uid(n), "ann", 0, now=0)
    assert c.cancel(uid(1)) == Dequeued(uid(1))
    assert c.cancel(uid(1)) is None
    assert not c.is_queued(uid(1))
    assert c.status().queued == 2
    assert scheduled_ids(c, now=0) == [uid(0)]
    c.release(uid(0))
    assert scheduled_ids(c, now=0) == [uid(2)]


def test_cancel_of_the_head_lets_the_next_one_through() -> None:
    c = Coordinator(config())
    for n in range(3):
        c.submit(uid(n), "ann", 4, now=0)
    c.cancel(uid(0))
    assert scheduled_ids(c, now=0) == [uid(1), uid(2)]


def test_cancel_of_a_running_execution_returns_none_and_keeps_its_slot() -> None:
    c = Coordinator(config())
    c.submit(uid(1), "ann", 0, now=0)
    c.schedule(now=0)
    assert c.cancel(uid(1)) is None
    assert c.is_running(uid(1))


# --- configuration -----------------------------------------------------------------------


def test_lowering_caps_kills_nothing_but_schedules_nothing_until_under_the_cap() -> None:
    c = Coordinator(config(max_running=4))
    for n in range(6):
        c.submit(uid(n), "ann", 0, now=0)
    c.schedule(now=0)
    c.set_config(config(max_running=2))
    assert c.status().running == 4
    c.release(uid(0))
    c.release(uid(1))
    assert c.schedule(now=1) == []
    c.release(uid(2))
    assert scheduled_ids(c, now=1) == [uid(4)]


def test_lowering_a_user_cap_blocks_only_that_user() -> None:
    c = Coordinator(config(user_running=3))
    for n in range(4):
        c.submit(uid(n), "ann", 0, now=0)
    c.submit(uid(10), "bob", 0, now=0)
    c.schedule(now=0)  # ann: 0,1,2 ; bob: 10
    c.set_config(config(user_running=3, overrides={"ann": UserLimits(max_running=1)}))
    c.release(uid(0))
    assert c.schedule(now=0) == []
    c.release(uid(1))
    c.release(uid(2))
    assert scheduled_ids(c, now=0) == [uid(3)]


def test_raising_caps_schedules_more_and_assigning_config_works_like_set_config() -> None:
    c = Coordinator(config(max_running=1, user_running=1))
    for n in range(3):
        c.submit(uid(n), "ann", 0, now=0)
    c.schedule(now=0)
    c.config = config(max_running=5, user_running=5)
    assert c.config.max_running == 5
    assert scheduled_ids(c, now=0) == [uid(1), uid(2)]
    assert c.status().max_running == 5


def test_raising_a_user_cap_lets_entries_queued_while_it_was_full_run() -> None:
    c = Coordinator(config(user_running=1))
    c.submit(uid(1), "ann", 0, now=0)
    c.schedule(now=0)
    c.submit(uid(2), "ann", 0, now=1)  # queued while ann is at her cap
    assert c.schedule(now=1) == []
    c.set_config(config(user_running=2))
    assert scheduled_ids(c, now=1) == [uid(2)]


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        UserLimits(rate_window_s=0)
    with pytest.raises(ValueError):
        UserLimits(max_running=-1)
    with pytest.raises(ValueError):
        CoordinatorConfig(aging_interval_s=0)
    with pytest.raises(ValueError):
        CoordinatorConfig(max_queue=-1)


def test_limits_for_falls_back_to_the_default() -> None:
    vip = UserLimits(rate_limit=5)
    cfg = CoordinatorConfig(user_limits={"vip": vip})
    assert cfg.limits_for("vip") is vip
    assert cfg.limits_for("ann") == UserLimits()


def test_status_reports_counts_by_user_and_priority() -> None:
    c = Coordinator(config(max_running=1))
    c.submit(uid(1), "ann", 2, now=0)
    c.submit(uid(2), "ann", 5, now=0)
    c.submit(uid(3), "bob", 5, now=0)
    c.schedule(now=0)
    status = c.status()
    assert (status.queued, status.running, status.max_queue, status.max_running) == (2, 1, 1000, 1)
    assert status.queued_by_user == {"ann": 1, "bob": 1}
    assert status.running_by_user == {"ann": 1}
    assert status.queued_by_priority == {2: 1, 5: 1}


# --- restore -----------------------------------------------------------------------------


def live_history() -> tuple[Coordinator, list[tuple[str, tuple[object, ...]]]]:
    """A live coordinator and the facts the service would have stored for it."""
    cfg = config(max_running=3, user_running=2, rate_limit=5)
    live = Coordinator(cfg)
    facts: list[tuple[str, tuple[object, ...]]] = []
    for n, (user, priority, now) in enumerate(
        [("ann", 1, 0.0), ("ann", 5, 1.0), ("bob", 5, 1.0), ("ann", 9, 2.0), ("cid", 0, 3.0)]
    ):
        if isinstance(live.submit(uid(n), user, priority, now), Queued):
            facts.append(("accepted", (user, now, uid(n))))
            facts.append(("queued", (uid(n), user, priority, now)))
    for s in live.schedule(now=4):
        facts.append(("scheduled", (s.execution_id, s.user_id)))
    live.release(uid(3))
    facts.append(("released", (uid(3),)))
    live.cancel(uid(4))
    facts.append(("removed", (uid(4),)))
    return live, facts


def fold(coordinator: Coordinator, facts: list[tuple[str, tuple[object, ...]]]) -> None:
    for kind, args in facts:
        getattr(coordinator, f"restore_{kind}")(*args)


def test_restore_rebuilds_the_live_state() -> None:
    live, facts = live_history()
    rebuilt = Coordinator(live.config)
    fold(rebuilt, facts)
    assert rebuilt.status() == live.status()
    for n in range(5):
        assert rebuilt.is_queued(uid(n)) == live.is_queued(uid(n))
        assert rebuilt.is_running(uid(n)) == live.is_running(uid(n))
    assert scheduled_ids(rebuilt, now=5) == scheduled_ids(live, now=5)


def test_restore_is_idempotent_under_duplicates_and_redelivered_suffixes() -> None:
    live, facts = live_history()
    rebuilt = Coordinator(live.config)
    for fact in facts:
        fold(rebuilt, [fact, fact])
    fold(rebuilt, facts)  # the whole stream redelivered
    fold(rebuilt, facts[3:])
    assert rebuilt.status() == live.status()
    assert scheduled_ids(rebuilt, now=5) == scheduled_ids(live, now=5)


def test_redelivered_scheduled_after_release_does_not_leak_a_slot() -> None:
    c = Coordinator(config(max_running=1))
    c.restore_queued(uid(1), "ann", 0, 0.0)
    c.restore_scheduled(uid(1), "ann")
    c.restore_released(uid(1))
    c.restore_queued(uid(1), "ann", 0, 0.0)
    c.restore_scheduled(uid(1), "ann")
    assert c.status().running == 0
    assert c.status().queued == 0


def test_restore_scheduled_without_a_queued_fact_still_takes_a_slot() -> None:
    c = Coordinator(config(max_running=1))
    c.restore_scheduled(uid(1), "ann")
    c.submit(uid(2), "ann", 0, now=0)
    assert c.is_running(uid(1))
    assert c.schedule(now=0) == []


def test_restored_acceptances_count_toward_the_rate_window_only_while_recent() -> None:
    c = Coordinator(config(rate_limit=2, rate_window_s=60))
    c.restore_accepted("ann", 0.0, uid(1))
    c.restore_accepted("ann", 0.0, uid(1))  # redelivered
    c.restore_accepted("ann", 30.0, uid(2))
    assert isinstance(c.submit(uid(3), "ann", 0, now=59), Rejected)
    assert isinstance(c.submit(uid(4), "ann", 0, now=60), Queued)


def test_restored_acceptances_without_ids_are_deduplicated_by_instant() -> None:
    c = Coordinator(config(rate_limit=2, rate_window_s=60))
    c.restore_accepted("ann", 10.0)
    c.restore_accepted("ann", 10.0)
    assert isinstance(c.submit(uid(1), "ann", 0, now=11), Queued)
    assert isinstance(c.submit(uid(2), "ann", 0, now=11), Rejected)


def test_restored_queue_keeps_fifo_and_aging_from_stored_times() -> None:
    c = Coordinator(config(max_running=1, aging_interval_s=10))
    c.restore_queued(uid(1), "ann", 0, 0.0)
    c.restore_queued(uid(2), "bob", 3, 30.0)
    assert scheduled_ids(c, now=39) == [uid(1)]


def test_restore_removed_drops_a_queued_execution_and_forgets_nothing_running() -> None:
    c = Coordinator(config())
    c.restore_queued(uid(1), "ann", 0, 0.0)
    c.restore_scheduled(uid(2), "ann")
    c.restore_removed(uid(1))
    c.restore_removed(uid(2))
    assert not c.is_queued(uid(1))
    assert c.is_running(uid(2))


def test_restore_queued_refuses_an_invalid_priority() -> None:
    with pytest.raises(ValueError):
        Coordinator(config()).restore_queued(uid(1), "ann", 12, 0.0)


# --- deep queues (their speed is measured in bench/coordinator_bench.py) ----------------


def test_ten_thousand_executions_for_one_user_all_flow_through() -> None:
    c = Coordinator(
        CoordinatorConfig(max_running=8, max_queue=20_000, default_user_limits=GENEROUS)
    )
    ids = [uid(n) for n in range(10_000)]
    for n, execution_id in enumerate(ids):
        c.submit(execution_id, "ann", n % 10, now=n * 0.001)
    done = 0
    now = 10.0
    while done < len(ids):
        for s in c.schedule(now):
            c.release(s.execution_id)
            done += 1
        now += 0.01
    assert c.status().queued == 0


def test_many_users_with_a_deep_queue_and_capped_users_keep_their_caps() -> None:
    cfg = CoordinatorConfig(
        max_running=50,
        max_queue=10_000,
        default_user_limits=UserLimits(rate_limit=10_000, max_running=1, max_queued=10_000),
    )
    c = Coordinator(cfg)
    for n in range(10_000):
        c.submit(uid(n), f"user{n % 100}", n % 10, now=0)
    running: list[UUID] = []
    for step in range(3_000):
        running.extend(s.execution_id for s in c.schedule(now=step * 0.1))
        c.release(running.pop(0))
    assert c.status().queued == 10_000 - 3_000 - len(running)
