"""A run's payload spread over as many ConfigMaps as it needs, each well within the limit.

The API server refuses a ConfigMap whose values exceed 1 MiB, and etcd refuses a write above
1.5 MiB (its default `--max-request-bytes`): an object is stored whole, as protobuf or, on a
JSON-configured server, with binaryData in base64. So each ConfigMap gets a budget counted
as its JSON would be (keys, values with binaryData in base64, a little for quoting) and kept
`CONFIGMAP_MARGIN` under 1 MiB for the metadata: it then fits every way it is sent or stored.

Entries are packed in order, filling one ConfigMap before the next; one that does not fit the
room left is cut into parts `KEY.0`, `KEY.1`, ... which the launcher joins in order. Keys are
unique across a run's ConfigMaps, so a single projected volume shows them all in one
directory. A small run (the usual) is one ConfigMap holding every entry whole."""

from __future__ import annotations

import base64
import bisect
import json
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate

from codeexec.ports.sandbox import SandboxError

CONFIGMAP_MAX_BYTES = 1024 * 1024
"""The API server's limit on a ConfigMap's data plus binaryData."""
CONFIGMAP_MARGIN = 64 * 1024
"""Left for the metadata (labels, annotations, owner, managedFields: about 2 KiB)."""
CONFIGMAP_BUDGET = CONFIGMAP_MAX_BYTES - CONFIGMAP_MARGIN
KEY_OVERHEAD = 16
"""Per entry: JSON quotes, colon and comma, or protobuf's framing."""
ESCAPED = [len(json.dumps(chr(b))) - 2 for b in range(128)]
"""How long each ASCII character is in a JSON string (`"` and control characters escaped)."""
MIN_PART = 4096
"""Less room than this left in a ConfigMap: the next entry starts a new one, not a sliver."""
MAX_CONFIG_MAPS = 16
"""At most this many per run (about 11 MiB of files and stdin): above what the API accepts
by default (CODEEXEC_MAX_REQUEST_BYTES, 4 MiB), so only a raised limit meets it."""


class PayloadTooLarge(SandboxError):
    """The submission does not fit the ConfigMaps a run may use to carry it into the pod."""


@dataclass(frozen=True)
class Entry:
    key: str
    data: bytes
    text: bool = False
    """ASCII text, carried in `data` (readable in a review) rather than `binaryData`."""

    @cached_property
    def cost(self) -> int:
        """What it adds to its ConfigMap's JSON: text as JSON escapes it, binary as base64."""
        if self.text:
            size = len(json.dumps(self.data.decode("ascii"))) - 2
        else:
            size = 4 * ((len(self.data) + 2) // 3)
        return len(self.key) + KEY_OVERHEAD + size


@dataclass
class Slot:
    """The entries of one ConfigMap, as its `data` and `binaryData` take them."""

    data: dict[str, str] = field(default_factory=dict)
    binary: dict[str, str] = field(default_factory=dict)
    room: int = CONFIGMAP_BUDGET - 64  # `"data": {}, "binaryData": {}` themselves

    def put(self, entry: Entry) -> None:
        self.room -= entry.cost
        if entry.text:
            self.data[entry.key] = entry.data.decode("ascii")
        else:
            self.binary[entry.key] = base64.b64encode(entry.data).decode("ascii")


def cut(entry: Entry, key: str, offset: int, room: int) -> Entry:
    """The longest part of `entry` from `offset`, under `key`, that fits `room`."""
    left = max(room - len(key) - KEY_OVERHEAD, 0)
    if entry.text:  # as long as its JSON escapes fit
        widths = accumulate(ESCAPED[b] for b in entry.data[offset : offset + left])
        take = bisect.bisect_right(list(widths), left)
    else:
        take = left // 4 * 3
    return Entry(key, entry.data[offset : offset + take], entry.text)


class Packer:
    """Fills ConfigMaps in order: `head` entries whole in the first (the launcher), then
    each `add`ed entry whole where it fits, else cut in parts. Raises PayloadTooLarge past
    MAX_CONFIG_MAPS."""

    def __init__(self, head: list[Entry]) -> None:
        self.slots = [Slot()]
        for entry in head:
            self.slots[0].put(entry)

    def add(self, entry: Entry) -> int:
        """Packs `entry`; how many parts it was cut into (1: whole, under its own key)."""
        size, slot = len(entry.data), self.slots[-1]
        if slot.room < MIN_PART and entry.cost > slot.room:
            slot = self._next()
        if entry.cost <= slot.room:
            slot.put(entry)
            return 1
        offset, count = 0, 0
        while offset < size:
            part = cut(entry, f"{entry.key}.{count}", offset, slot.room)
            if len(part.data) < MIN_PART and len(part.data) < size - offset:
                slot = self._next()
                continue
            slot.put(part)
            offset, count = offset + len(part.data), count + 1
        return count

    def _next(self) -> Slot:
        if len(self.slots) == MAX_CONFIG_MAPS:
            raise PayloadTooLarge(f"more than {MAX_CONFIG_MAPS} ConfigMaps")
        self.slots.append(Slot())
        return self.slots[-1]
