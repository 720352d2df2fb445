"""KafkaSettings: how the bus reaches the brokers, read from CODEEXEC_KAFKA_* variables."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

COMPRESSIONS = ("gzip", "snappy", "lz4", "zstd", "none")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSettingsError(ValueError):
    """A setting has a value the bus cannot use; the message names the variable."""


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "codeexec"
    compression: str = "lz4"
    """lz4 costs a fraction of gzip's CPU to write and read (bench/distributed_bench.py
    --variant: gzip added 22-27 ms of CPU per execution over all processes and the broker;
    lz4 about as little as none); every codec stays readable whatever is set."""
    replication_factor: int = 1
    """For topics this bus creates; 3 on a production cluster of three or more brokers."""
    linger_ms: int = 5
    max_batch_bytes: int = 1024 * 1024
    """Per partition: a full batch makes `publish` wait until it is sent (bounded memory)."""
    max_in_flight_messages: int = 10_000
    """`publish` awaits acknowledgements at least every this many messages."""
    request_timeout_ms: int = 30_000
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    fetch_max_wait_ms: int = 20
    """How long the broker may hold a fetch that finds nothing new. Apache Kafka answers a
    waiting fetch as soon as a message arrives, so there this only bounds idle requests;
    tansu answers when the wait ends, so it is each hop's added latency (aiokafka's 500
    made every hop between roles take about 200 ms here)."""
    partitions: str = ""
    """`topic=N[,topic=N...]`: partition counts for topics this bus creates, instead of the
    topic table's (16 for execution_events). Fewer suit a small deployment: every fetch
    covers every partition a member owns (tansu here spent about five times the CPU on a
    16-partition fetch as on a 4-partition one). Only at creation: an existing topic keeps
    its count, and adding partitions later moves keys (and per-execution order) with them."""
    revoke_grace_s: float = 10.0
    """How long a member losing partitions waits for its in-flight batch to be committed."""
    lag_cache_s: float = 2.0
    """How long `lag()` reuses its answer: the dashboard samples every second and `/metrics`
    is scraped too, and each fresh answer costs a few requests per group (0: none reused)."""
    lag_timeout_s: float = 3.0
    """How long `lag()` waits for the brokers before it reports the last answer it has."""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None

    def __post_init__(self) -> None:
        _one_of("CODEEXEC_KAFKA_COMPRESSION", self.compression, COMPRESSIONS)
        _one_of("CODEEXEC_KAFKA_SECURITY_PROTOCOL", self.security_protocol, SECURITY_PROTOCOLS)
        _one_of("CODEEXEC_KAFKA_SASL_MECHANISM", self.sasl_mechanism, SASL_MECHANISMS)
        if not self.bootstrap_servers.strip():
            raise KafkaSettingsError("CODEEXEC_KAFKA_BOOTSTRAP: give host:port[,host:port...]")
        self.partition_counts()  # a bad value fails at start, naming the variable
        if not 0 <= self.fetch_max_wait_ms <= 60_000:
            raise KafkaSettingsError("CODEEXEC_KAFKA_FETCH_MAX_WAIT_MS: from 0 to 60000")
        if not 0 <= self.lag_cache_s <= 3600:
            raise KafkaSettingsError("CODEEXEC_KAFKA_LAG_CACHE_S: from 0 to 3600 seconds")
        if not 0 < self.lag_timeout_s <= 600:
            raise KafkaSettingsError(
                "CODEEXEC_KAFKA_LAG_TIMEOUT_S: more than 0, at most 600 seconds"
            )
        if self.replication_factor < 1:
            raise KafkaSettingsError("CODEEXEC_KAFKA_REPLICATION_FACTOR: must be at least 1")
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password
        ):
            raise KafkaSettingsError(
                "CODEEXEC_KAFKA_SASL_USERNAME and CODEEXEC_KAFKA_SASL_PASSWORD: "
                f"required with security protocol {self.security_protocol}"
            )

    def partition_counts(self) -> dict[str, int]:
        """`partitions` parsed: topic name to partition count."""
        counts: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in self.partitions.split(","))):
            topic, _, count = item.partition("=")
            if not topic.strip() or not count.strip().isdigit() or int(count) < 1:
                raise KafkaSettingsError(
                    f"CODEEXEC_KAFKA_PARTITIONS: expected topic=N[,topic=N...] with N at"
                    f" least 1, not {item!r}"
                )
            counts[topic.strip()] = int(count)
        return counts

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSettings:
        """CODEEXEC_KAFKA_BOOTSTRAP and the other CODEEXEC_KAFKA_<FIELD> variables."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = ENV_NAMES.get(f.name, "CODEEXEC_KAFKA_" + f.name.upper())
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            kind = PARSERS[str(f.type)]
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise KafkaSettingsError(f"{name}: expected {kind.__name__}, got {raw!r}") from None
        return cls(**values)

    def client_options(self) -> dict[str, Any]:
        """Connection options shared by the producer, the consumers and the admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.endswith("SSL"):
            options["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    def producer_options(self) -> dict[str, Any]:
        return {
            **self.client_options(),
            # Every in-sync replica has it before publish returns; no idempotence or
            # transactions (aiokafka keeps one request per broker in flight, so retries
            # cannot reorder a partition).
            "acks": "all",
            "enable_idempotence": False,
            "compression_type": None if self.compression == "none" else self.compression,
            "linger_ms": self.linger_ms,
            "max_batch_size": self.max_batch_bytes,
        }

    def consumer_options(self, group: str) -> dict[str, Any]:
        return {
            **self.client_options(),
            "group_id": group,
            "enable_auto_commit": False,  # the core commits after its effects are stored
            "auto_offset_reset": "earliest",
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "max_poll_interval_ms": self.max_poll_interval_ms,
            "fetch_max_wait_ms": self.fetch_max_wait_ms,
        }


ENV_NAMES = {"bootstrap_servers": "CODEEXEC_KAFKA_BOOTSTRAP"}
PARSERS: dict[str, type[Any]] = {"str": str, "str | None": str, "int": int, "float": float}


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise KafkaSettingsError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
