"""Settings of a codeexec process: where the store is, which roles run, limits and timings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from codeexec.domain.coordinator import CoordinatorConfig
from codeexec.domain.dead_letter import DeadLetterConfig
from codeexec.service.store_config import StoreConfig, store_config

ALL_ROLES = frozenset(
    {"coordinator", "saga", "worker", "projections", "relay", "dead-letters", "replay"}
)


@dataclass
class Settings:
    data_dir: Path | None = None
    """Where the SQLite event store lives; None keeps everything in memory."""
    coordinator: CoordinatorConfig = field(default_factory=CoordinatorConfig)
    saga_grace_s: float = 30.0
    worker_id: str | None = None
    """This process's name in the runs its worker starts; None: a random id kept in the
    data dir (stable across restarts; see codeexec.service.worker_identity)."""
    timer_interval_s: float = 0.25
    consumer_max_attempts: int = 3
    dead_letters: DeadLetterConfig = field(default_factory=DeadLetterConfig)
    roles: frozenset[str] = ALL_ROLES
    """Which roles run in this process (all of them when embedded; none: an API-only
    process, which records commands and answers queries)."""

    live_feed: bool = True
    """This process answers event streams and waits (`events`, `wait`): it tails the bus's
    `execution_events` to hear at once of what other processes record. A process that only
    runs roles (`codeexec role`) follows no execution and sets it False: one tail fewer on
    the broker (each costs the broker a fetch over every partition, all the time)."""

    snapshot_every: int = 10_000
    """A stateful role's snapshot is saved each this many log events: it starts from the
    latest snapshot plus at most about this many events, whatever the history."""

    sqlite_synchronous: str = "normal"
    """`normal` (WAL): nothing is lost when a process dies; `full`: also survives power loss."""

    store_busy_timeout_s: float = 2.0
    """How long a request waits for the event store (its turn, then a lock another
    connection holds) before it fails with StoreBusy (the API's 503 with Retry-After)."""

    shutdown_grace_s: float = 10.0
    """On stop, how long runs in progress may take to finish; what still runs after it is
    abandoned and reported lost (with its output so far) on the next start."""

    store: str | None = None
    """memory, sqlite or postgres (codeexec.service.store_config); None: CODEEXEC_STORE, else
    sqlite with a data dir, memory without. An exported PERSISTENCE_MODULE is honoured."""

    store_configured: StoreConfig | None = None
    """A store an adapter distribution configured (`codeexec_mongo.store_config`), handed in
    by the composition root; when given, `store` is not read."""

    def store_config(self) -> StoreConfig:
        if self.store_configured is not None:
            return self.store_configured
        sqlite = {
            "SQLITE_LOCK_TIMEOUT": str(max(1, math.ceil(self.store_busy_timeout_s))),
            "SQLITE_BUSY_TIMEOUT_S": str(self.store_busy_timeout_s),
            "SQLITE_SYNCHRONOUS": self.sqlite_synchronous,
        }
        return store_config(self.store, self.data_dir, sqlite_env=sqlite)

    def store_env(self) -> dict[str, str]:
        return self.store_config().env
