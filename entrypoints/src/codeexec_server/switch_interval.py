"""The interpreter's thread switch interval for a server process (CODEEXEC_SWITCH_INTERVAL_MS).

A server runs the event loop (requests) and the store thread (the roles' batches, the
commits) under one interpreter lock. Whenever the loop lets the lock go (a socket write, a
`getrandom`, a SQLite call), a busy store thread takes it and keeps it until it blocks or the
switch interval ends: Python's 5 ms, in every such wait of every request. 1 ms bounds the
wait at a fifth of that; side by side on `codeexec serve --sandbox fake` under wrk, on a
loaded machine, it was ahead on accepts/s and runs/s in most pairs at the same CPU per
request (docs/performance.md). Set only by the entrypoints, never by the library: a
program embedding codeexec keeps its own."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from codeexec_server.deployment import ConfigError

VARIABLE = "CODEEXEC_SWITCH_INTERVAL_MS"
DEFAULT_MS = 1.0


def interval_s(env: Mapping[str, str]) -> float | None:
    """The interval to set, in seconds: DEFAULT_MS unless the variable says otherwise, None
    for `python` (the interpreter's own, untouched). A bad value is refused, naming it."""
    raw = env.get(VARIABLE, "").strip()
    if not raw:
        return DEFAULT_MS / 1000
    if raw == "python":
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
