"""How a consumer's batch is cut into store calls: bounded steps, each tracked where it ends."""

from __future__ import annotations

from collections.abc import Sequence

from codeexec.ports.bus import Message, TopicPartition

STORE_CALL_MESSAGES = 64
"""Messages handled in one store call at most. A batch is handled in such steps, each
committed with its position, so a request waits for one step of a role, not a batch of
hundreds; the steps of several roles still share a commit (group commit)."""

Step = tuple[TopicPartition, list[Message], int, bool]  # messages, position, track it


def store_calls(plan: Sequence[Step]) -> list[list[Step]]:
    """Split each partition's messages into steps of at most STORE_CALL_MESSAGES, in
    order, and group steps into store calls of about that many messages. A step that
    stops inside a partition's messages tracks its own last position (what precedes it
    is handled); the partition's last step tracks the batch's last position, as before."""
    calls: list[list[Step]] = []
    current: list[Step] = []
    size = 0
    for tp, wanted, last, track in plan:
        start = 0
        while True:
            piece = wanted[start : start + STORE_CALL_MESSAGES - size]
            start += len(piece)
            done = start >= len(wanted)
            position = last if done else piece[-1].position
            assert position is not None
            current.append((tp, piece, position, track))
            size += len(piece)
            if size >= STORE_CALL_MESSAGES:
                calls.append(current)
                current, size = [], 0
            if done:
                break
    if current:
        calls.append(current)
    return calls
