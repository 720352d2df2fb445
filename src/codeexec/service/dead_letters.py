"""Parking events a consumer keeps failing on, so one poison event never blocks a partition."""

from __future__ import annotations

from codeexec.domain.routing import DEAD_LETTERS
from codeexec.ports.bus import EventBus, Message


async def park(
    bus: EventBus, group: str, message: Message, error: BaseException, attempts: int
) -> None:
    headers = dict(message.headers)
    headers.update(
        {
            "dl-group": group,
            "dl-topic": message.topic,
            "dl-partition": str(message.partition),
            "dl-offset": str(message.offset),
            "dl-error": f"{type(error).__name__}: {error}"[:2000],
            "dl-attempts": str(attempts),
        }
    )
    await bus.publish([Message(DEAD_LETTERS, message.key, message.value, headers)])
