"""Deletes executor pods and ConfigMaps whose runs are finished or unknown (after a crash).

Rules, each safe with other workers in the namespace:
- this worker's own objects that no run of this process drives: at start (a restarted
  process has no runs: what is there was left by the one before, whose runs the worker
  reports lost) and later (deletes that failed);
- anyone's pod that ended, or outlived its activeDeadlineSeconds, more than `sweep_grace_s`
  ago (its owner is gone: an owner deletes its pod as soon as it has read it);
- anyone's ConfigMaps older than the grace whose run has no pod (a crash between the
  creates, or a failed delete).

A run's ConfigMaps (its head, named after the run, and any parts) are found by their
`codeexec.dev/sandbox` label and deleted together, the head last."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from codeexec_kubernetes.api import KubeApi, KubeApiError
from codeexec_kubernetes.objects import MANAGED, SANDBOX_LABEL, WORKER_LABEL
from codeexec_kubernetes.settings import KubernetesSettings

log = logging.getLogger(__name__)

SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED.items())


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _run_of(obj: dict[str, Any]) -> str:
    """The sandbox an object belongs to: its label, else (made before parts) its name."""
    meta = obj["metadata"]
    return str((meta.get("labels") or {}).get(SANDBOX_LABEL) or meta["name"])


def _ended_at(pod: dict[str, Any]) -> datetime | None:
    status = pod.get("status") or {}
    if status.get("phase") not in ("Succeeded", "Failed"):
        return None
    times = [
        _time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for c in status.get("containerStatuses") or []
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else _time(pod["metadata"].get("creationTimestamp"))


class Sweeper:
    def __init__(
        self,
        api: KubeApi,
        settings: KubernetesSettings,
        active: Callable[[], Collection[str]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api, self.settings, self.active, self.now = api, settings, active, now
        self.deleted: list[tuple[str, str]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._every())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                await self.sweep()
            except KubeApiError as error:
                log.warning("sweep failed: %s", error)

    async def sweep(self) -> int:
        """One pass; returns how many objects it deleted."""
        now, grace = self.now(), self.settings.sweep_grace_s
        # `active` is read live, not copied: a run that starts during the pass holds its
        # slot before it creates anything, so what the listings show of it is spared.
        active = self.active()
        pods = (await self.api.list("pod", SELECTOR)).get("items") or []
        maps = (await self.api.list("configmap", SELECTOR)).get("items") or []
        runs: dict[str, list[dict[str, Any]]] = {}  # a run's ConfigMaps, by its sandbox
        for config_map in maps:
            runs.setdefault(_run_of(config_map), []).append(config_map)
        count = 0
        for pod in pods:
            meta = pod["metadata"]
            sandbox = _run_of(pod)
            if sandbox in active:
                runs.pop(sandbox, None)
                continue
            mine = (meta.get("labels") or {}).get(WORKER_LABEL) == self.settings.worker_id
            ended = _ended_at(pod)
            created = _time(meta.get("creationTimestamp")) or now
            deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds") or 0
            overdue = (now - created).total_seconds() > deadline + grace
            if mine or overdue or (ended and (now - ended).total_seconds() > grace):
                count += await self._delete("pod", meta["name"])
                count += await self._delete_maps(runs.pop(sandbox, []), sandbox)
            else:
                runs.pop(sandbox, None)  # its owner's to delete
        for sandbox, config_maps in runs.items():  # runs without a pod
            if sandbox in active:
                continue
            meta = config_maps[0]["metadata"]
            mine = (meta.get("labels") or {}).get(WORKER_LABEL) == self.settings.worker_id
            created = min(_time(c["metadata"].get("creationTimestamp")) or now for c in config_maps)
            if mine or (now - created).total_seconds() > grace:
                count += await self._delete_maps(config_maps, sandbox)
        return count

    async def _delete_maps(self, config_maps: list[dict[str, Any]], head: str) -> int:
        """A run's ConfigMaps, its head (named after the run) last: as long as any part is
        left, its owner is too."""
        names = sorted((c["metadata"]["name"] for c in config_maps), key=lambda n: n == head)
        if head not in names:
            names.append(head)  # created after the listing, perhaps
        count = 0
        for name in names:
            count += await self._delete("configmap", name)
        return count

    async def _delete(self, kind: str, name: str) -> int:
        if await self.api.delete(kind, name, grace_s=0):
            self.deleted.append((kind, name))
            log.info("swept %s %s", kind, name)
            return 1
        return 0
