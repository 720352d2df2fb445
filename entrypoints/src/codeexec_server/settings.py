"""Server settings: where data lives, which sandbox runs code, and the safety bounds of the API."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from codeexec.domain.model import Limits
from codeexec_server.deployment import SANDBOXES

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_data_dir() -> Path:
    return Path(os.environ.get("CODEEXEC_DATA_DIR", ".codeexec"))


def default_sandbox_kind() -> str:
    return os.environ.get("CODEEXEC_SANDBOX", "local")


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {text!r}") from None
    if not value >= 0:
        raise ValueError(f"{name} must be a number of seconds, not {text!r}")
    return value


@dataclass
class ServerSettings:
    """Everything `create_app` needs; `from_env` reads the CODEEXEC_* variables."""

    data_dir: Path = field(default_factory=default_data_dir)
    sandbox: str = field(default_factory=default_sandbox_kind)  # local, fake or kubernetes
    host: str = "127.0.0.1"
    allow_anonymous: bool = False
    anonymous_user: str = "anonymous"
    allow_user_priority: bool = False
    max_request_bytes: int = 4 * 2**20
    max_inflight_submissions: int = 256
    """Submissions being accepted (recorded) at once, all users together; waiting is apart."""
    max_waiters_per_user: int = 16
    """Requests of one user waiting for a result (`wait=true`) at once."""
    max_waiters_per_key: int = 4
    """Of those, waiting on one Idempotency-Key at once."""
    max_wait_s: float = 60.0
    heartbeat_s: float = 15.0
    max_streams_per_user: int = 16
    """Event streams one user may hold open at once."""
    stream_write_timeout_s: float = 30.0
    """An event stream whose client takes longer than this to take one write is dropped."""
    allow_private_callbacks: bool = False
    """Judge0 callbacks may go to loopback and private addresses (off: public ones only)."""
    # Read here rather than in from_env so that `codeexec serve` honours them too.
    store_busy_timeout_s: float = field(
        default_factory=lambda: _seconds("CODEEXEC_STORE_BUSY_TIMEOUT_S", 2.0)
    )
    shutdown_grace_s: float = field(
        default_factory=lambda: _seconds("CODEEXEC_SHUTDOWN_GRACE_S", 10.0)
    )
    queue_sample_s: float = field(default_factory=lambda: _seconds("CODEEXEC_QUEUE_SAMPLE_S", 1.0))
    """How often each API process samples the queue for the dashboard's chart (0: never)."""
    queue_history_s: float = field(
        default_factory=lambda: _seconds("CODEEXEC_QUEUE_HISTORY_S", 600.0)
    )
    """How far back those samples go (the ring holds history / sample of them)."""
    max_limits: Limits = field(
        default_factory=lambda: Limits(
            wall_time_s=60.0,
            cpu_time_s=30.0,
            memory_bytes=1024 * 2**20,
            processes=256,
            output_bytes=16 * 2**20,
            file_size_bytes=64 * 2**20,
            open_files=1024,
        )
    )

    def __post_init__(self) -> None:
        if self.sandbox not in SANDBOXES:
            choices = ", ".join(SANDBOXES)
            raise ValueError(f"CODEEXEC_SANDBOX must be one of {choices}, not {self.sandbox!r}")
        if self.allow_anonymous and not is_loopback(self.host):
            raise ValueError(
                f"anonymous access is only allowed on a loopback host, not {self.host!r}"
            )

    @classmethod
    def from_env(cls) -> ServerSettings:
        """For `uvicorn codeexec_server.app:app_from_env --factory`."""
        return cls(
            host=os.environ.get("CODEEXEC_HOST", "127.0.0.1"),
            allow_anonymous=os.environ.get("CODEEXEC_ALLOW_ANONYMOUS", "") == "1",
            allow_user_priority=os.environ.get("CODEEXEC_ALLOW_USER_PRIORITY", "") == "1",
            max_wait_s=float(os.environ.get("CODEEXEC_MAX_WAIT_S", "60")),
            heartbeat_s=float(os.environ.get("CODEEXEC_HEARTBEAT_S", "15")),
            max_inflight_submissions=int(os.environ.get("CODEEXEC_MAX_INFLIGHT", "256")),
            max_waiters_per_user=int(os.environ.get("CODEEXEC_MAX_WAITERS_PER_USER", "16")),
            max_waiters_per_key=int(os.environ.get("CODEEXEC_MAX_WAITERS_PER_KEY", "4")),
            max_streams_per_user=int(os.environ.get("CODEEXEC_MAX_STREAMS_PER_USER", "16")),
            stream_write_timeout_s=float(os.environ.get("CODEEXEC_STREAM_WRITE_TIMEOUT_S", "30")),
            allow_private_callbacks=os.environ.get("CODEEXEC_ALLOW_PRIVATE_CALLBACKS", "") == "1",
        )
