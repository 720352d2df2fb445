"""The coordinator's waiting line: priority lanes with aging, FIFO within a priority, fast picks."""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from uuid import UUID

MIN_PRIORITY = 0
MAX_PRIORITY = 9

_K = TypeVar("_K")


@dataclass(eq=False, slots=True)
class QueueEntry:
    execution_id: UUID
    user_id: str
    priority: int
    enqueued_at: float
    seq: int  # enqueue order: equal timestamps still keep FIFO


class ExecutionQueue:
    """Waiting executions, one FIFO lane per (priority, user).

    Aging adds the same amount to everything enqueued at the same time, so within a lane the
    head is always the best entry. A pick therefore compares one candidate per priority level:
    the oldest lane head among users allowed to run more. Each level keeps a heap of lane heads
    keyed by enqueue order; heap items go stale (head left, user reached its cap) and are
    dropped lazily when they reach the top, so no decision scans the queue."""

    def __init__(self, aging_interval_s: float, is_eligible: Callable[[str], bool]) -> None:
        self.aging_interval_s = aging_interval_s
        self._is_eligible = is_eligible
        self._entries: dict[UUID, QueueEntry] = {}
        self._lanes: dict[str, dict[int, deque[QueueEntry]]] = {}
        self._heaps: dict[int, list[tuple[int, str]]] = {}
        # Per level, user -> seq of that lane's head item in the heap; keeps one item per head.
        self._offered: dict[int, dict[str, int]] = {}
        self._by_user: dict[str, int] = {}
        self._by_priority: dict[int, int] = {}
        self._next_seq = 0
        self._last_enqueued_at = -math.inf

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, execution_id: object) -> bool:
        return execution_id in self._entries

    def count_for(self, user_id: str) -> int:
        return self._by_user.get(user_id, 0)

    def counts_by_user(self) -> dict[str, int]:
        return dict(self._by_user)

    def counts_by_priority(self) -> dict[int, int]:
        return dict(self._by_priority)

    def push(self, execution_id: UUID, user_id: str, priority: int, enqueued_at: float) -> None:
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise ValueError(f"priority must be {MIN_PRIORITY}..{MAX_PRIORITY}, got {priority}")
        # A clock stepping back must not make a later entry look older than an earlier one.
        enqueued_at = max(enqueued_at, self._last_enqueued_at)
        self._last_enqueued_at = enqueued_at
        entry = QueueEntry(execution_id, user_id, priority, enqueued_at, self._next_seq)
        self._next_seq += 1
        self._entries[execution_id] = entry
        lane = self._lanes.setdefault(user_id, {}).setdefault(priority, deque())
        lane.append(entry)
        self._by_user[user_id] = self._by_user.get(user_id, 0) + 1
        self._by_priority[priority] = self._by_priority.get(priority, 0) + 1
        if len(lane) == 1:
            self._offer(priority, user_id)

    def remove(self, execution_id: UUID) -> QueueEntry | None:
        entry = self._entries.get(execution_id)
        if entry is not None:
            self._detach(entry)
        return entry

    def pop_best(self, now: float) -> QueueEntry | None:
        """Remove and return the eligible entry with the highest effective priority, oldest
        first among equals."""
        best: QueueEntry | None = None
        best_rank = (-math.inf, 0)
        for priority in list(self._heaps):
            head = self._peek(priority)
            if head is None:
                continue
            rank = (priority + self._aging(head, now), -head.seq)
            if rank > best_rank:
                best, best_rank = head, rank
        if best is None:
            return None
        heap = self._heaps[best.priority]
        heapq.heappop(heap)
        del self._offered[best.priority][best.user_id]
        self._detach(best)
        return best

    def offer_user(self, user_id: str) -> None:
        """The user may run more again: put its lane heads back in the running for picks."""
        for priority in list(self._lanes.get(user_id, ())):
            self._offer(priority, user_id)

    def refresh(self) -> None:
        """Eligibility changed for anyone (new limits): rebuild every level's heap."""
        for priority in range(MIN_PRIORITY, MAX_PRIORITY + 1):
            self._rebuild(priority)

    def _aging(self, entry: QueueEntry, now: float) -> int:
        waited = (now - entry.enqueued_at) / self.aging_interval_s
        return max(0, math.floor(waited)) if math.isfinite(waited) else 0

    def _detach(self, entry: QueueEntry) -> None:
        del self._entries[entry.execution_id]
        lanes = self._lanes[entry.user_id]
        lane = lanes[entry.priority]
        was_head = lane[0] is entry
        if was_head:
            lane.popleft()
        else:
            lane.remove(entry)
        _decrement(self._by_user, entry.user_id)
        _decrement(self._by_priority, entry.priority)
        if not lane:
            del lanes[entry.priority]
            if not lanes:
                del self._lanes[entry.user_id]
        elif was_head:
            self._offer(entry.priority, entry.user_id)

    def _offer(self, priority: int, user_id: str) -> None:
        lane = self._lanes.get(user_id, {}).get(priority)
        if not lane or not self._is_eligible(user_id):
            return
        offered = self._offered.setdefault(priority, {})
        seq = lane[0].seq
        if offered.get(user_id) == seq:
            return
        heap = self._heaps.setdefault(priority, [])
        heapq.heappush(heap, (seq, user_id))
        offered[user_id] = seq
        if len(heap) > 2 * len(self._entries) + 64:  # stale items piled up: compact
            self._rebuild(priority)

    def _peek(self, priority: int) -> QueueEntry | None:
        heap = self._heaps[priority]
        offered = self._offered[priority]
        while heap:
            seq, user_id = heap[0]
            lane = self._lanes.get(user_id, {}).get(priority)
            if lane and lane[0].seq == seq and self._is_eligible(user_id):
                return lane[0]
            heapq.heappop(heap)
            if offered.get(user_id) == seq:
                del offered[user_id]
        del self._heaps[priority]
        return None

    def _rebuild(self, priority: int) -> None:
        heads = {
            user_id: lane[0].seq
            for user_id, lanes in self._lanes.items()
            if (lane := lanes.get(priority)) and self._is_eligible(user_id)
        }
        heap = [(seq, user_id) for user_id, seq in heads.items()]
        heapq.heapify(heap)
        self._offered[priority] = heads
        if heap:
            self._heaps[priority] = heap
        else:
            self._heaps.pop(priority, None)


def _decrement(counts: dict[_K, int], key: _K) -> None:
    remaining = counts[key] - 1
    if remaining:
        counts[key] = remaining
    else:
        del counts[key]
