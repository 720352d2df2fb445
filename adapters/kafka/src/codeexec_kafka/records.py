"""Kafka records as the port's Messages: keys and header values are UTF-8 text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from codeexec.ports.bus import Message


def to_messages(records: Iterable[Any]) -> Iterator[Message]:
    for r in records:
        yield Message(
            topic=r.topic,
            key=r.key.decode("utf-8") if r.key is not None else "",
            value=r.value if r.value is not None else b"",
            headers={k: v.decode("utf-8") for k, v in r.headers},
            partition=r.partition,
            offset=r.offset,
        )
