"""The envelope every event shares: identity, position, who, when, and why (causation)."""

from __future__ import annotations

from datetime import datetime
from hashlib import blake2b
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator


class DomainEvent(BaseModel):
    """Envelope shared by every event. `aggregate_*` place it in its aggregate's sequence;
    `event_id` is derived from them so a republished event keeps its identity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = 1
    event_id: UUID
    aggregate_id: UUID
    aggregate_version: int = Field(ge=1)
    execution_id: UUID
    user_id: str
    time: datetime
    correlation_id: UUID
    causation_id: UUID | None = None

    @field_validator("schema_version")
    @classmethod
    def _is_current(cls, version: int) -> int:
        # Older versions are upcast before validation (from_document); newer are unknown.
        if version != current_version(cls):
            raise ValueError(f"expected schema version {current_version(cls)}, got {version}")
        return version

    @property
    def originator_id(self) -> UUID:  # the name eventsourcing's recorders use
        return self.aggregate_id

    @property
    def originator_version(self) -> int:
        return self.aggregate_version

    @property
    def type_name(self) -> str:
        return str(type(self).model_fields["type"].default)


def current_version(cls: type[DomainEvent]) -> int:
    return int(cls.model_fields["schema_version"].default)


def derive_event_id(aggregate_id: UUID, version: int) -> UUID:
    """Deterministic (a republished event keeps its id) and cheap: a keyed hash of the
    aggregate id and version, shaped as a version-5-style (name-based) UUID."""
    digest = bytearray(
        blake2b(aggregate_id.bytes + version.to_bytes(8, "big"), digest_size=16).digest()
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return UUID(bytes=bytes(digest))
