"""KafkaSettings from CODEEXEC_KAFKA_* variables: values parsed, bad ones named."""

from __future__ import annotations

import ssl

import pytest

from codeexec_kafka import KafkaSettings, KafkaSettingsError


def test_settings_come_from_the_environment() -> None:
    settings = KafkaSettings.from_env(
        {
            "CODEEXEC_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
            "CODEEXEC_KAFKA_CLIENT_ID": "api-1",
            "CODEEXEC_KAFKA_COMPRESSION": "zstd",
            "CODEEXEC_KAFKA_REPLICATION_FACTOR": "3",
            "CODEEXEC_KAFKA_REVOKE_GRACE_S": "2.5",
            "CODEEXEC_KAFKA_FETCH_MAX_WAIT_MS": "500",
            "CODEEXEC_KAFKA_LAG_CACHE_S": "0.5",
            "CODEEXEC_KAFKA_LAG_TIMEOUT_S": "10",
            "UNRELATED": "x",
        }
    )
    assert settings.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.replication_factor == 3 and settings.revoke_grace_s == 2.5
    assert settings.lag_cache_s == 0.5 and settings.lag_timeout_s == 10
    producer = settings.producer_options()
    assert producer["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert producer["client_id"] == "api-1" and producer["compression_type"] == "zstd"
    assert producer["acks"] == "all" and producer["enable_idempotence"] is False
    consumer = settings.consumer_options("worker")
    assert consumer["group_id"] == "worker" and consumer["enable_auto_commit"] is False
    assert consumer["auto_offset_reset"] == "earliest"
    assert consumer["fetch_max_wait_ms"] == 500


def test_defaults_without_variables() -> None:
    settings = KafkaSettings.from_env({})
    assert settings == KafkaSettings()
    assert settings.producer_options()["compression_type"] == "lz4"
    assert KafkaSettings(compression="none").producer_options()["compression_type"] is None


def test_sasl_over_tls_passes_credentials_and_a_verifying_context() -> None:
    options = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="codeexec",
        sasl_password="secret",
    ).client_options()
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "codeexec"
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CODEEXEC_KAFKA_COMPRESSION": "brotli"}, "CODEEXEC_KAFKA_COMPRESSION"),
        ({"CODEEXEC_KAFKA_REPLICATION_FACTOR": "three"}, "CODEEXEC_KAFKA_REPLICATION_FACTOR"),
        ({"CODEEXEC_KAFKA_REPLICATION_FACTOR": "0"}, "CODEEXEC_KAFKA_REPLICATION_FACTOR"),
        ({"CODEEXEC_KAFKA_FETCH_MAX_WAIT_MS": "-1"}, "CODEEXEC_KAFKA_FETCH_MAX_WAIT_MS"),
        ({"CODEEXEC_KAFKA_BOOTSTRAP": " "}, "CODEEXEC_KAFKA_BOOTSTRAP"),
        ({"CODEEXEC_KAFKA_SECURITY_PROTOCOL": "TLS"}, "CODEEXEC_KAFKA_SECURITY_PROTOCOL"),
        ({"CODEEXEC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "CODEEXEC_KAFKA_SASL_USERNAME"),
        ({"CODEEXEC_KAFKA_REVOKE_GRACE_S": "soon"}, "CODEEXEC_KAFKA_REVOKE_GRACE_S"),
        ({"CODEEXEC_KAFKA_LAG_CACHE_S": "-1"}, "CODEEXEC_KAFKA_LAG_CACHE_S"),
        ({"CODEEXEC_KAFKA_LAG_CACHE_S": "often"}, "CODEEXEC_KAFKA_LAG_CACHE_S"),
        ({"CODEEXEC_KAFKA_LAG_TIMEOUT_S": "0"}, "CODEEXEC_KAFKA_LAG_TIMEOUT_S"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(KafkaSettingsError, match=named):
        KafkaSettings.from_env(env)


def test_partition_counts_are_parsed_and_bad_ones_named() -> None:
    settings = KafkaSettings.from_env(
        {"CODEEXEC_KAFKA_PARTITIONS": "execution_events=4, execution_tasks=2"}
    )
    assert settings.partition_counts() == {"execution_events": 4, "execution_tasks": 2}
    assert KafkaSettings().partition_counts() == {}
    for bad in ("execution_events", "execution_events=0", "=3", "execution_events=x"):
        with pytest.raises(KafkaSettingsError, match="CODEEXEC_KAFKA_PARTITIONS"):
            KafkaSettings(partitions=bad)
