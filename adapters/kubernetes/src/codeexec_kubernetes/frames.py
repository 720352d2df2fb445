"""Decodes the launcher's framed log lines back into separate, bytes-exact output and reports."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from codeexec.domain.model import Stream

MAX_LINE = 64 * 1024
"""Longer lines are not the launcher's (its frames stay under 12 KiB): dropped as noise."""

_OUTPUT = {
    "co": ("compile", "stdout"),
    "ce": ("compile", "stderr"),
    "ro": ("run", "stdout"),
    "re": ("run", "stderr"),
}


@dataclass(frozen=True)
class OutputFrame:
    stage: str
    stream: Stream
    data: bytes


@dataclass
class FrameReader:
    """Feed it raw log bytes; it yields what is new. Frames already seen (a reconnected
    stream starts from the beginning again) are skipped by sequence number."""

    last_seq: int = 0
    reports: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False
    gaps: list[tuple[int, int]] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)
    _partial: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> Iterator[OutputFrame]:
        self._partial.extend(data)
        while (end := self._partial.find(b"\n")) >= 0:
            line = bytes(self._partial[:end])
            del self._partial[: end + 1]
            yield from self._line(line)
        if len(self._partial) > MAX_LINE:
            self._noise(bytes(self._partial[:200]))
            self._partial.clear()

    def reset_stream(self) -> None:
        """A new log stream starts: what was left of an unfinished line is gone."""
        self._partial.clear()

    def _line(self, line: bytes) -> Iterator[OutputFrame]:
        text = line.decode("ascii", "replace").rstrip("\r")
        parts = text.split(" ", 3)
        if len(parts) < 3 or parts[0] != "cx" or not parts[1].isdigit():
            self._noise(line)
            return
        seq, kind, body = int(parts[1]), parts[2], parts[3] if len(parts) > 3 else ""
        if seq <= self.last_seq:
            return
        if seq != self.last_seq + 1:
            self.gaps.append((self.last_seq + 1, seq - 1))
        self.last_seq = seq
        if kind in _OUTPUT:
            stage, stream = _OUTPUT[kind]
            try:
                data = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                self._noise(line)
                return
            yield OutputFrame(stage, stream, data)  # type: ignore[arg-type]
        elif kind == "s":
            try:
                report = json.loads(body)
            except json.JSONDecodeError:
                self._noise(line)
                return
            if isinstance(report, dict):
                self.reports.append(report)
        elif kind == "x":
            self.ended = True
        else:
            self._noise(line)

    def _noise(self, line: bytes) -> None:
        if len(self.noise) < 20:  # the launcher's own errors, kept for the message
            self.noise.append(line[:500].decode("utf-8", "replace"))
