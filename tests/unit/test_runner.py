"""The role runner: any subset of roles, none included, started on the same ports."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeexec import builtin_roles
from codeexec.adapters.memory_bus import partition_for
from codeexec.domain.routing import EXECUTION_EVENTS, TOPICS
from codeexec.runtime import ALL_ROLES, Codeexec, Settings
from codeexec.service.read_model_projector import backfill
from tests.unit.factories import eventually, roomy, runtime, script


def test_an_unknown_role_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="roles: unknown role courier"):
        Codeexec(Settings(roles=frozenset({"worker", "courier"})))


async def test_every_role_reports_its_health_by_name() -> None:
    async with runtime() as cx:
        health = cx.health()
        assert set(health) == ALL_ROLES
        assert all(h.live and h.ready and str(h) == "running" for h in health.values())
        assert cx.healthy
    assert cx.health() == {} and not cx.healthy


async def test_a_process_runs_only_the_roles_it_is_given() -> None:
    async with runtime(roles=frozenset({"coordinator", "relay", "projections"})) as cx:
        assert set(cx.health()) == {"coordinator", "relay", "projections"}
        view = await cx.submit("alice", script("out 1"))
        await asyncio.sleep(0.2)
        # Queued by the coordinator here; no worker or saga runs it.
        assert (await cx.commands.catch_up(view.id)).state == "scheduled"


async def test_an_api_only_process_records_commands_and_answers_queries() -> None:
    async with runtime(roles=frozenset(), config=roomy()) as cx:
        assert cx.health() == {} and cx.healthy
        view = await cx.submit("alice", script("out 1"))
        assert cx.get(view.id).state == "requested"  # read back at once, from its events
        cancelled = await cx.cancel(view.id)
        assert cancelled.cancel_requested
        assert [e.type_name async for e in cx.events(view.id, follow=False)] == [
            "ExecutionRequested",
            "ExecutionCancelRequested",
        ]


async def test_projections_restart_from_where_every_partition_got_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with runtime(data_dir=tmp_path) as cx:
        # Fixed ids (idempotency keys) that put work on every partition: a partition that
        # never had an event holds the backfill at the log's start (a known limit).
        views = [
            await cx.submit(f"u{n % 5}", script(f"out {n}"), idempotency_key=f"k{n}")
            for n in range(60)
        ]
        partitions = TOPICS[EXECUTION_EVENTS].partitions
        assert {partition_for(str(v.id), partitions) for v in views} == set(range(partitions))
        await asyncio.gather(*(cx.wait(v.id, timeout=10) for v in views))
        await eventually(
            lambda: all(v.terminal for v in cx.list_all()) and len(cx.list_all()) == 60
        )
        events = cx.store.max_position() if cx.store else 0
    read: list[int] = []

    def counting(store: object, model: object) -> int:
        read.append(backfill(store, model))  # type: ignore[arg-type]
        return read[-1]

    monkeypatch.setattr(builtin_roles, "backfill", counting)
    async with runtime(data_dir=tmp_path):
        pass
    assert read and read[0] < events  # from the partitions' lowest position, not the start
