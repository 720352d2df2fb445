"""The admin limits document: coordinator caps, per-user limits and per-run resource maxima.

It travels in `LimitsChanged` events (so every process sees a change) and is what the admin
API reads and replaces."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from codeexec.domain.model import Limits

if TYPE_CHECKING:
    # Imported where used: coordinator imports the events, whose module imports this one.
    from codeexec.domain.coordinator import CoordinatorConfig


class ResourceMaxima(Limits):
    """The highest per-run limits a submission may ask for."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class UserLimitsModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    rate_limit: int = Field(default=60, ge=0, description="accepted submissions per window")
    rate_window_s: float = Field(default=60.0, gt=0)
    max_running: int = Field(default=4, ge=0)
    max_queued: int = Field(default=100, ge=0)
    storage_quota_bytes: int = Field(
        default=2**30,
        ge=0,
        description="bytes of source, stdin and output the user's submissions of the last "
        "storage window may keep in the store",
    )
    storage_window_s: float = Field(default=86_400.0, gt=0)


class LimitsDocument(BaseModel):
    """Global and per-user limits (the coordinator's config) and per-run resource maxima."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_running: int = Field(default=8, ge=0)
    max_queue: int = Field(default=1000, ge=0)
    aging_interval_s: float = Field(default=10.0, gt=0)
    default_user_limits: UserLimitsModel = Field(default_factory=UserLimitsModel)
    user_limits: dict[str, UserLimitsModel] = Field(default_factory=dict)
    max_resource_limits: ResourceMaxima
    allow_user_priority: bool = False

    def coordinator_config(self) -> CoordinatorConfig:
        from codeexec.domain.coordinator import CoordinatorConfig, UserLimits

        return CoordinatorConfig(
            max_running=self.max_running,
            max_queue=self.max_queue,
            aging_interval_s=self.aging_interval_s,
            default_user_limits=UserLimits(**self.default_user_limits.model_dump()),
            user_limits={u: UserLimits(**v.model_dump()) for u, v in self.user_limits.items()},
        )

    @classmethod
    def from_config(
        cls, config: CoordinatorConfig, maxima: Limits, allow_user_priority: bool
    ) -> LimitsDocument:
        return cls(
            max_running=config.max_running,
            max_queue=config.max_queue,
            aging_interval_s=config.aging_interval_s,
            default_user_limits=UserLimitsModel(**asdict(config.default_user_limits)),
            user_limits={u: UserLimitsModel(**asdict(v)) for u, v in config.user_limits.items()},
            max_resource_limits=ResourceMaxima(**maxima.model_dump()),
            allow_user_priority=allow_user_priority,
        )
