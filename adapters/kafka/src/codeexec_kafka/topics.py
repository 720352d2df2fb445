"""Topic declaration: create what is missing with its partitions and retention, accept the rest."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from codeexec.domain.routing import TopicSpec

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


async def existing_topics(admin: AIOKafkaAdminClient) -> dict[str, int]:
    """Every topic of the cluster with its partition count. A metadata request for all
    topics: one naming a missing topic would create it on brokers that auto-create."""
    return {
        str(t["topic"]): len(t["partitions"])
        for t in await admin.describe_topics(None)
        if t["error_code"] == 0
    }


async def declare_topics(
    admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec], replication_factor: int
) -> dict[str, int]:
    """Create the missing topics; return the partition count of each declared topic.
    An existing topic is kept as it is (another process, or an operator, made it): a
    partition count other than the spec's is worth a warning, not a failure."""
    existing = await existing_topics(admin)
    missing = [spec for spec in specs if spec.name not in existing]
    if missing:
        response = await admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    spec.partitions,
                    replication_factor,
                    topic_configs={"retention.ms": str(spec.retention_ms)},
                )
                for spec in missing
            ]
        )
        for name, code, message in _topic_errors(response):
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise KafkaError(f"cannot create topic {name!r}: error {code}: {message}")
        existing = await existing_topics(admin)
    declared: dict[str, int] = {}
    for spec in specs:
        partitions = existing.get(spec.name)
        if partitions is None:
            raise KafkaError(f"topic {spec.name!r} was created but the cluster does not list it")
        if partitions != spec.partitions:
            log.warning(
                "topic %s exists with %d partitions, declared with %d: keeping %d",
                spec.name,
                partitions,
                spec.partitions,
                partitions,
            )
        declared[spec.name] = partitions
    kept = [spec for spec in specs if spec not in missing]
    if kept:
        await _warn_on_other_retention(admin, kept)
    return declared


async def retention_ms(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> dict[str, int]:
    """The retention.ms each topic has on the cluster."""
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
    )
    found: dict[str, int] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            for entry in resource["config_entries"]:
                if entry["config_names"] == "retention.ms" and entry["config_value"] is not None:
                    found[str(resource["resource_name"])] = int(entry["config_value"])
    return found


async def _warn_on_other_retention(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> None:
    actual = await retention_ms(admin, [spec.name for spec in specs])
    for spec in specs:
        kept = actual.get(spec.name)
        if kept is not None and kept != spec.retention_ms:
            log.warning(
                "topic %s keeps retention.ms=%d, declared with %d",
                spec.name,
                kept,
                spec.retention_ms,
            )


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    errors = getattr(response, "topic_errors", [])
    # CreateTopicsResponse v0 has (topic, code); v1 and later add a message.
    return [(str(e[0]), int(e[1]), e[2] if len(e) > 2 else None) for e in errors]
