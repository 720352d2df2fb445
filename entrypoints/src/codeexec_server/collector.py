"""The cyclic garbage collector's thresholds for a server process (CODEEXEC_GC_THRESHOLD).

A server keeps many objects alive for long (the aggregate cache, queued executions, the
in-memory bus's messages), and Python's default thresholds (700, 10, 10) collect the young
generation every 700 allocations and the whole heap again and again while it grows:
measured on `codeexec serve --sandbox fake` under load, the collector took 3.5-3.9 s of a
run's ~20 s of CPU. Larger thresholds collect the same cycles less often (reference counting
still frees everything else at once). Set only by the entrypoints, never by the library: a
program embedding codeexec keeps its own."""

from __future__ import annotations

import gc
from collections.abc import Mapping

from codeexec_server.deployment import ConfigError

VARIABLE = "CODEEXEC_GC_THRESHOLD"
DEFAULT = (50_000, 20, 10)


def thresholds(env: Mapping[str, str]) -> tuple[int, int, int] | None:
    """The thresholds to set: DEFAULT unless the variable says otherwise, None for
    `python` (the interpreter's own, untouched). A bad value is refused, naming it."""
    raw = env.get(VARIABLE, "").strip()
    if not raw:
        return DEFAULT
    if raw == "python":
        return None
    parts = raw.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(
            f"{VARIABLE} must be three positive integers (generation 0,1,2 thresholds, "
            f"as gc.set_threshold takes) or 'python', not {raw!r}"
        )
    first, second, third = (int(p) for p in parts)
    return first, second, third


def tune(env: Mapping[str, str]) -> None:
    chosen = thresholds(env)
    if chosen is not None:
        gc.set_threshold(*chosen)
