"""Admission: refused submissions leave only a digest and a size in the store; accepted
payloads are stored once; the per-user storage quota; the store's size."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeexec import AdmissionRefused, CoordinatorConfig, RunSpec, SourceFile, UserLimits
from codeexec.adapters.memory_read_model import InMemoryExecutionReadModel
from codeexec.adapters.read_model_queries import ReadModelQueries
from codeexec.domain.admission import RecentSubmission, admit
from codeexec.domain.events import RejectionReason, SubmissionRefused
from codeexec.domain.model import request_digest
from codeexec.ports.clock import ManualClock
from codeexec.ports.read_model import ExecutionReadModel, SubmissionTotals
from codeexec.runtime import Codeexec
from codeexec.service.admission import Admission
from codeexec.service.unshown import UserUnshown
from tests.unit.factories import runtime, script

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def limited(**user: int | float) -> CoordinatorConfig:
    return CoordinatorConfig(default_user_limits=UserLimits(**user))  # type: ignore[arg-type]


def padded(size: int, text: str = "out hi") -> RunSpec:
    """A fake-sandbox program of exactly `size` bytes (blank padding is ignored)."""
    return script(text + "\n" + " " * (size - len(text) - 1))


def stored_documents(cx: Codeexec) -> list[bytes]:
    assert cx.store is not None
    return [doc for _, _, doc in cx.store.read_documents(1, 100_000)]


def files_size(directory: Path, prefix: str) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.name.startswith(prefix))


# --- the policy -----------------------------------------------------------------------


def test_over_the_rate_limit_retry_after_is_when_the_oldest_counted_one_leaves() -> None:
    limits = UserLimits(rate_limit=2, rate_window_s=60)
    recent = [
        RecentSubmission(T0, 10, counted=True),
        RecentSubmission(T0 + timedelta(seconds=5), 10, counted=False),  # rejected: not counted
        RecentSubmission(T0 + timedelta(seconds=10), 10, counted=True),
    ]
    now = T0 + timedelta(seconds=20)
    refusal = admit(limits, recent, 10, now)
    assert refusal is not None and refusal.reason is RejectionReason.RATE_LIMITED
    assert (refusal.limit, refusal.retry_after_s, refusal.too_large) == ("rate_limit", 40.0, False)
    assert admit(limits, recent, 10, T0 + timedelta(seconds=60, microseconds=1)) is None
    assert admit(UserLimits(rate_limit=0), [], 1, now).retry_after_s is None  # type: ignore[union-attr]


def test_over_the_storage_quota_retry_after_is_when_enough_bytes_leave_the_window() -> None:
    limits = UserLimits(storage_quota_bytes=100, storage_window_s=3600)
    recent = [
        RecentSubmission(T0, 30, counted=True),
        RecentSubmission(T0 + timedelta(seconds=100), 40, counted=False),  # rejected, still kept
        RecentSubmission(T0 + timedelta(seconds=200), 20, counted=True),
    ]
    now = T0 + timedelta(seconds=300)
    assert admit(limits, recent, 10, now) is None  # 90 + 10 fits exactly
    refusal = admit(limits, recent, 50, now)  # 40 too many: the first two must leave
    assert refusal is not None and refusal.reason is RejectionReason.STORAGE_QUOTA
    assert refusal.limit == "storage_quota_bytes" and not refusal.too_large
    assert refusal.retry_after_s == 3600 + 100 - 300
    assert "storage quota of 100 bytes per 3600s" in refusal.message


def test_a_submission_larger_than_the_whole_quota_is_too_large_not_worth_retrying() -> None:
    refusal = admit(UserLimits(storage_quota_bytes=100), [], 101, T0)
    assert refusal is not None and refusal.too_large and refusal.retry_after_s is None


@given(
    sizes=st.lists(st.integers(0, 60), min_size=1, max_size=30),
    gaps=st.lists(st.floats(0, 50), min_size=30, max_size=30),
)
def test_admitted_bytes_never_exceed_the_quota_and_retry_after_is_exact(
    sizes: list[int], gaps: list[float]
) -> None:
    limits = UserLimits(
        rate_limit=5, rate_window_s=30, storage_quota_bytes=100, storage_window_s=100
    )
    admitted: list[RecentSubmission] = []
    now = T0
    for size, gap in zip(sizes, gaps, strict=False):
        now += timedelta(seconds=gap)
        refusal = admit(limits, admitted, size, now)
        if refusal is None:
            admitted.append(RecentSubmission(now, size, counted=True))
            window = [r for r in admitted if r.created_at > now - timedelta(seconds=100)]
            assert sum(r.stored_bytes for r in window) <= 100
            assert len([r for r in admitted if r.created_at > now - timedelta(seconds=30)]) <= 5
        elif refusal.retry_after_s is not None:
            later = now + timedelta(seconds=refusal.retry_after_s)
            assert admit(limits, admitted, size, later) is None
            assert admit(limits, admitted, size, later - timedelta(milliseconds=1)) is not None


# --- the runtime ----------------------------------------------------------------------


async def test_a_submission_over_the_rate_limit_is_refused_and_its_payload_not_stored() -> None:
    big = padded(256 * 1024)
    async with runtime(config=limited(rate_limit=1, rate_window_s=3600)) as cx:
        first = await cx.submit("mallory", big)
        assert (await cx.wait(first.id, timeout=5)).status == "succeeded"
        before = len(stored_documents(cx))
        with pytest.raises(AdmissionRefused) as refused:
            await cx.submit("mallory", big, priority=2)
        assert refused.value.refusal.limit == "rate_limit"
        assert refused.value.refusal.retry_after_s == pytest.approx(3600, abs=5)
        new = stored_documents(cx)[before:]
        assert len(new) == 1 and len(new[0]) < 1024  # a digest and a size, not 256 KiB
        event = json.loads(new[0])
        assert event["type"] == "SubmissionRefused" and event["reason"] == "rate_limited"
        assert event["request_digest"] == request_digest(big, 2)
        assert event["payload_bytes"] == 256 * 1024
        # It started no execution: nothing to list, nothing for the coordinator to decide.
        assert [v.id for v in cx.list_all()] == [first.id]
        assert (await cx.queue_status()).queued == 0


async def test_an_accepted_source_is_stored_once() -> None:
    marker = base64.b64encode(padded(64 * 1024, "out once").files[0].content)
    async with runtime() as cx:
        view = await cx.submit("alice", padded(64 * 1024, "out once"))
        done = await cx.wait(view.id, timeout=5)
        assert done.status == "succeeded" and done.stdout == b"once\n"
        holding = [doc for doc in stored_documents(cx) if marker in doc]
        assert len(holding) == 1 and b'"type":"ExecutionRequested"' in holding[0]


async def test_the_storage_quota_counts_source_stdin_and_output_in_a_rolling_window() -> None:
    clock = ManualClock()
    config = limited(storage_quota_bytes=3000, storage_window_s=600)
    async with runtime(config=config, clock=clock) as cx:
        spec = RunSpec(
            language="fake",
            files=(SourceFile(name="main", content=b"out " + b"x" * 996),),
            stdin=b"y" * 500,
        )
        done = await cx.wait((await cx.submit("alice", spec)).id, timeout=5)
        assert done.stored_bytes == 1000 + 500 + 997  # source, stdin, output: "x" * 996 + "\n"
        with pytest.raises(AdmissionRefused) as refused:
            await cx.submit("alice", padded(600))
        assert refused.value.refusal.limit == "storage_quota_bytes"
        assert refused.value.refusal.retry_after_s == pytest.approx(600, abs=1)
        assert (await cx.submit("bob", padded(600))).user_id == "bob"  # per user
        with pytest.raises(AdmissionRefused) as too_large:
            await cx.submit("alice", padded(3001))
        assert too_large.value.refusal.too_large
        clock.advance(601)  # the first run left the window: room again
        assert (await cx.wait((await cx.submit("alice", padded(600))).id, timeout=5)).terminal
        refusals = [e for _, e in cx.store.read_all() if isinstance(e, SubmissionRefused)]  # type: ignore[union-attr]
        assert [r.reason for r in refusals] == [RejectionReason.STORAGE_QUOTA] * 2


async def test_the_ports_paging_default_counts_what_the_memory_model_counts() -> None:
    # Read models without their own query (an adapter's first version) fall back to paging.
    clock = ManualClock()
    async with runtime(config=limited(rate_limit=2, rate_window_s=60), clock=clock) as cx:
        for text in ("out 1", "out 22", "out 333"):
            await cx.wait((await cx.submit("alice", script(text))).id, timeout=5)
            clock.advance(40)
        await cx.submit("bob", script("out 4"))
        since = clock.now() - timedelta(seconds=100)
        default = ExecutionReadModel.recent_submissions(cx.read_model, "alice", since)
        assert default == cx.read_model.recent_submissions("alice", since)
        assert [r.stored_bytes for r in default] == [6 + 3, 7 + 4]


async def test_admission_counts_survive_a_restart(tmp_path: Path) -> None:
    config = limited(rate_limit=1, rate_window_s=3600)
    async with runtime(config=config, data_dir=tmp_path) as cx:
        await cx.wait((await cx.submit("alice", script("out 1"))).id, timeout=5)
    async with runtime(config=config, data_dir=tmp_path) as cx:
        with pytest.raises(AdmissionRefused):
            await cx.submit("alice", script("out 2"))


async def test_the_store_size_is_its_files_on_disk_or_its_events_in_memory(tmp_path: Path) -> None:
    async with runtime() as cx:
        empty = cx.store_bytes()
        await cx.wait((await cx.submit("alice", padded(10_000))).id, timeout=5)
        assert cx.store_bytes() - empty == sum(len(d) for d in stored_documents(cx))
    async with runtime(data_dir=tmp_path) as cx:
        await cx.wait((await cx.submit("alice", padded(100_000))).id, timeout=5)
        assert cx.store_bytes() == files_size(tmp_path, "events.sqlite3") > 100_000


class _Submissions(InMemoryExecutionReadModel):
    """A read model that holds only the user's submissions (admission's two reads)."""

    def __init__(self, recent: list[RecentSubmission]) -> None:
        super().__init__()
        self.recent = recent

    def recent_submissions(self, user_id: str, since: datetime) -> list[RecentSubmission]:
        return [r for r in self.recent if r.created_at > since]

    def submission_totals(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals:
        return ExecutionReadModel.submission_totals(self, user_id, rate_since, storage_since)

    def submission_bound(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals:
        # From the minute each window starts in, as the SQL read models keep them.
        rate, storage = _minute_start(rate_since), _minute_start(storage_since)
        return SubmissionTotals(
            sum(1 for r in self.recent if r.counted and r.created_at >= rate),
            sum(r.stored_bytes for r in self.recent if r.created_at >= storage),
        )


def _minute_start(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


@given(
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 60), st.booleans()), max_size=30),
    st.integers(0, 5),
    st.integers(0, 200),
    st.integers(0, 80),
)
def test_admitting_on_totals_decides_as_the_full_walk_does(
    rows: list[tuple[int, int, bool]], rate_limit: int, quota: int, size: int
) -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    recent = sorted(
        (RecentSubmission(now - timedelta(seconds=age), n, counted) for age, n, counted in rows),
        key=lambda r: r.created_at,
    )
    limits = UserLimits(
        rate_limit=rate_limit, rate_window_s=60, storage_quota_bytes=quota, storage_window_s=300
    )
    queries = ReadModelQueries(_Submissions(recent))
    admission = Admission(None, queries, lambda user: limits)  # type: ignore[arg-type]
    spec = RunSpec(language="fake", files=(SourceFile(name="main", content=b"x" * size),))
    since = now - timedelta(seconds=300)
    expected = admit(limits, [r for r in recent if r.created_at > since], spec.payload_bytes, now)
    assert asyncio.run(admission.refusal("alice", spec, now)) == expected


@given(
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 60), st.booleans()), max_size=20),
    st.lists(st.tuples(st.integers(0, 59), st.integers(0, 60)), max_size=10),
    st.integers(0, 5),
    st.integers(0, 200),
    st.integers(0, 80),
)
def test_admitting_on_the_bounds_decides_as_counting_exactly(
    rows: list[tuple[int, int, bool]],
    unshown_rows: list[tuple[int, int]],
    rate_limit: int,
    quota: int,
    size: int,
) -> None:
    """Submissions recorded that the read model does not show yet count: the bound over
    all of them (the shown ones among them counted twice) decides as the exact list."""
    now = datetime(2026, 11, 30, tzinfo=UTC)
    shown = sorted(
        (RecentSubmission(now - timedelta(seconds=age), n, counted) for age, n, counted in rows),
        key=lambda r: r.created_at,
    )
    # Times apart from the shown ones' (the read model matches them by time).
    not_shown = list(
        (RecentSubmission(now - timedelta(seconds=age, microseconds=1), n, True))
        for age, n in unshown_rows
    )
    not_shown.sort(key=lambda r: r.created_at)
    limits = UserLimits(
        rate_limit=rate_limit, rate_window_s=60, storage_quota_bytes=quota, storage_window_s=300
    )
    queries = ReadModelQueries(_Submissions(shown))
    unshown = UserUnshown(queries, "alice")
    for submission in sorted([*not_shown, *shown[-3:]], key=lambda r: r.created_at):
        unshown.add(submission)
    admission = Admission(None, queries, lambda user: limits)  # type: ignore[arg-type]
    spec = RunSpec(language="fake", files=(SourceFile(name="main", content=b"x" * size),))
    since = now - timedelta(seconds=300)
    windowed = [r for r in shown if r.created_at > since]
    expected = admit(limits, [*windowed, *not_shown], spec.payload_bytes, now)
    assert asyncio.run(admission.refusal("alice", spec, now, (), unshown)) == expected
