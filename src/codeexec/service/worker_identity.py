"""The worker's identity: the id recorded in `ExecutionStarted`, stable across restarts.

Workers compete on one consumer group (`WORKER_GROUP`), so the id is not a group: it names
the process that ran a run, so that on start a worker reports lost exactly the runs *it*
started and never ended (another worker's runs are not its to judge; those of a worker that
never returns are ended by their saga's deadline). The id is a random one kept in the data
dir (created once, 0600), unless settings name one."""

from __future__ import annotations

import secrets
from pathlib import Path

from codeexec.data_dir import private_dir, write_private

WORKER_GROUP = "worker"
"""The one consumer group every worker joins on `execution_tasks`: each task runs once."""

WORKER_ID_FILE = "worker_id"
LEGACY_WORKER_ID = "worker"
"""What every worker called itself before ids were per process: a data dir whose store
predates the id file keeps it, so the runs its worker left are still recognised as its own."""


def new_worker_id() -> str:
    return f"worker-{secrets.token_hex(6)}"


def worker_id_for(data_dir: Path | None, configured: str | None = None) -> str:
    """`configured` if given; else the id kept in `data_dir` (made on first use); without
    a data dir, a new random id (nothing of this process survives it anyway)."""
    if configured:
        return configured
    if data_dir is None:
        return new_worker_id()
    private_dir(data_dir)
    path = data_dir / WORKER_ID_FILE
    if path.exists():
        kept = path.read_text().strip()
        if kept:
            return kept
    upgrade = (data_dir / "events.sqlite3").exists() and (
        data_dir / "events.sqlite3"
    ).stat().st_size
    worker_id = LEGACY_WORKER_ID if upgrade else new_worker_id()
    write_private(path, (worker_id + "\n").encode())
    return worker_id
