"""The interpreter's thread switch interval for a server process (CODEEXEC_SWITCH_INTERVAL_MS).

A server runs the event loop (requests) and the store thread (the roles' batches, the
commits) under one interpreter lock. Whenever the loop lets the lock go (a socket write, a
`getrandom`, a SQLite call), a busy store thread takes it and keeps it until it blocks or the
switch interval ends: Python's 5 ms, in every such wait of every request. 1 ms bounds the
wait at a fifth of that. Measured side by side it did not pay reliably (ahead on accepts/s
in most pairs of one series on a loaded machine; level in another; the end-to-end latency
with the local sandbox a little worse on a quiet one: docs/performance.md), so the
interpreter's own stays the default and this is a knob to try. Set only by the
entrypoints, never by the library: a program embedding codeexec keeps its own."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from codeexec_server.deployment import ConfigError

VARIABLE = "CODEEXEC_SWITCH_INTERVAL_MS"


def interval_s(env: Mapping[str, str]) -> float | None:
    """The interval to set, in seconds, as the variable says; None when it is unset or
    `python` (the interpreter's own, untouched). A bad value is refused, naming it."""
    raw = env.get(VARIABLE, "").strip()
    if not raw or raw == "python":
        return None
    try:
        ms = float(raw)
    except ValueError:
        ms = float("nan")
    if not 0.01 <= ms <= 100:
        raise ConfigError(
            f"{VARIABLE} must be milliseconds from 0.01 to 100 (sys.setswitchinterval) or"
            f" 'python', not {raw!r}"
        )
    return ms / 1000


def tune(env: Mapping[str, str]) -> None:
    chosen = interval_s(env)
    if chosen is not None:
        sys.setswitchinterval(chosen)
