"""Idempotency keys: a repeat returns the original execution, a reused key with another
request is refused (IETF idempotency-key draft), also after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeexec import IdempotencyKeyReused
from codeexec.runtime import ALL_ROLES
from tests.unit.factories import eventually, roomy, runtime, script


async def test_a_key_reused_for_another_spec_or_priority_is_refused() -> None:
    # Without a coordinator the first request stays as recorded: any new event would show.
    async with runtime(roles=ALL_ROLES - {"coordinator"}) as cx:
        assert cx.store is not None
        first = await cx.submit("alice", script("out 1"), idempotency_key="k")
        recorded = cx.store.max_position()
        with pytest.raises(IdempotencyKeyReused) as reused:
            await cx.submit("alice", script("out 2"), idempotency_key="k")
        assert reused.value.execution_id == first.id and "'k'" in str(reused.value)
        with pytest.raises(IdempotencyKeyReused):
            await cx.submit("alice", script("out 1"), priority=1, idempotency_key="k")
        assert cx.store.max_position() == recorded
        await eventually(lambda: [v.id for v in cx.list_all()] == [first.id])


async def test_an_identical_repeat_returns_the_original_even_over_the_rate_limit() -> None:
    async with runtime(config=roomy(rate_limit=1, rate_window_s=3600)) as cx:
        first = await cx.submit("alice", script("out 1"), priority=2, idempotency_key="k")
        again = await cx.submit("alice", script("out 1"), priority=2, idempotency_key="k")
        assert again.id == first.id


async def test_the_comparison_survives_a_restart(tmp_path: Path) -> None:
    async with runtime(data_dir=tmp_path) as cx:
        first = await cx.submit("alice", script("out 1"), idempotency_key="k")
        await cx.wait(first.id, timeout=5)
    async with runtime(data_dir=tmp_path) as cx:
        assert (await cx.submit("alice", script("out 1"), idempotency_key="k")).id == first.id
        with pytest.raises(IdempotencyKeyReused):
            await cx.submit("alice", script("out 2"), idempotency_key="k")
