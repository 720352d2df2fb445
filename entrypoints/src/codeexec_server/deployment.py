"""Deployment settings: which adapter serves each port, read from CODEEXEC_* variables and flags.

Every bad value raises ConfigError naming the variable; a chosen adapter whose package is not
installed raises MissingAdapter naming the pip package. Both exit 78 (EX_CONFIG) from the CLI."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

EX_CONFIG = 78  # sysexits.h: a configuration error, not worth restarting over

BUSES = ("memory", "kafka")
STORES = ("memory", "sqlite", "postgres", "mongo")
SANDBOXES = ("local", "fake", "kubernetes")
SHARED_STORES = ("postgres", "mongo")  # what processes on several hosts can all reach

ALL_ROLES = ("coordinator", "saga", "worker", "projections", "relay", "dead-letters", "replay")


class ConfigError(ValueError):
    """A setting the deployment cannot use; the message names the variable."""


class MissingAdapter(ConfigError):
    """A chosen adapter's distribution is not installed."""


class Unreachable(ConnectionError):
    """A chosen adapter's server (the brokers, the database) does not answer at start."""


# The adapter distributions, by the module they install and the setting that chooses them.
ADAPTERS = {
    "codeexec_kafka": ("codeexec-kafka", "CODEEXEC_BUS=kafka"),
    "codeexec_mongo": ("codeexec-mongo", "CODEEXEC_STORE=mongo"),
    "codeexec_kubernetes": ("codeexec-kubernetes", "CODEEXEC_SANDBOX=kubernetes"),
}


def import_adapter(module: str) -> ModuleType:
    """The adapter package, imported now that it is chosen (never before)."""
    package, setting = ADAPTERS[module]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != module:
            raise  # the adapter is there but one of its own dependencies is not
        raise MissingAdapter(
            f"{setting} needs the {package} package, which is not installed: pip install {package}"
        ) from None


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    value = value.strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _bootstrap(value: str) -> str:
    servers = [s.strip() for s in value.split(",")]
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"CODEEXEC_KAFKA_BOOTSTRAP must be host:port[,host:port...], not {value!r}"
            )
    return ",".join(servers)


def _store_of_module(module: str | None) -> str:
    # As store_config infers it: a PostgreSQL module exported alone (eventsourcing's, or
    # ours with group commit) means the read model and keys are in PostgreSQL too.
    from codeexec.service.store_config import POSTGRES_MODULES

    return "postgres" if module in POSTGRES_MODULES else "sqlite"


@dataclass(frozen=True)
class Deployment:
    """The adapters of one process. `data_dir` holds this process's own files (the SQLite
    store, the keys on sqlite); with a shared store nothing there is read by other hosts."""

    bus: str = "memory"
    kafka_bootstrap: str | None = None
    store: str = "sqlite"
    sandbox: str = "local"
    worker_id: str | None = None
    data_dir: Path = Path(".codeexec")

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "bus", _choice("CODEEXEC_BUS", self.bus, BUSES))
        object.__setattr__(self, "store", _choice("CODEEXEC_STORE", self.store, STORES))
        object.__setattr__(self, "sandbox", _choice("CODEEXEC_SANDBOX", self.sandbox, SANDBOXES))
        if self.kafka_bootstrap is not None:
            object.__setattr__(self, "kafka_bootstrap", _bootstrap(self.kafka_bootstrap))
        if self.bus == "kafka" and not self.kafka_bootstrap:
            raise ConfigError("CODEEXEC_BUS=kafka needs CODEEXEC_KAFKA_BOOTSTRAP=host:port[,...]")
        if self.worker_id is not None and not (0 < len(self.worker_id) <= 128):
            raise ConfigError("CODEEXEC_WORKER_ID must be 1-128 characters")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **flags: str | Path | None
    ) -> Deployment:
        """CODEEXEC_BUS, CODEEXEC_KAFKA_BOOTSTRAP, CODEEXEC_STORE, CODEEXEC_SANDBOX,
        CODEEXEC_WORKER_ID and CODEEXEC_DATA_DIR; `flags` given (not None) win."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        values: dict[str, str | Path | None] = {
            "bus": get("CODEEXEC_BUS") or "memory",
            "kafka_bootstrap": get("CODEEXEC_KAFKA_BOOTSTRAP"),
            "store": get("CODEEXEC_STORE") or _store_of_module(get("PERSISTENCE_MODULE")),
            "sandbox": get("CODEEXEC_SANDBOX") or "local",
            "worker_id": get("CODEEXEC_WORKER_ID"),
            "data_dir": Path(get("CODEEXEC_DATA_DIR") or ".codeexec"),
        }
        values.update({k: v for k, v in flags.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def check_split(self, roles: frozenset[str]) -> None:
        """Roles spread over processes must share a bus and a store that every process
        reaches: refuse the in-memory bus and a per-process store unless all roles are here."""
        if roles >= set(ALL_ROLES):
            return
        here = ", ".join(sorted(roles)) if roles else "no roles (the API only)"
        if self.bus == "memory":
            raise ConfigError(
                f"CODEEXEC_BUS=memory reaches only this process, which runs {here}: the other "
                "roles would never see its events. Use CODEEXEC_BUS=kafka, or run every role "
                "here (codeexec serve)"
            )
        if self.store not in SHARED_STORES:
            raise ConfigError(
                f"CODEEXEC_STORE={self.store} keeps the events in this process, which runs "
                f"{here}: use a shared store (CODEEXEC_STORE=postgres or mongo), or run every "
                "role here (codeexec serve)"
            )

    def check_adapters(self) -> None:
        """Import the chosen adapters now, so a missing one fails before anything starts."""
        if self.bus == "kafka":
            import_adapter("codeexec_kafka")
        if self.store == "mongo":
            import_adapter("codeexec_mongo")
        if self.sandbox == "kubernetes":
            import_adapter("codeexec_kubernetes")
