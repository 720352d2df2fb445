"""Admin-set limits: coordinator caps, per-user limits and the maxima of per-run resource limits.

Kept in `limits.json` under the data dir so they survive restarts, and pushed into the running
coordinator's policy whenever they change."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from codeexec.data_dir import write_private
from codeexec.domain.coordinator import CoordinatorConfig, UserLimits
from codeexec.domain.model import Limits
from codeexec.runtime import Codeexec


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


class LimitsPolicy:
    """The current limits document; `apply` hands the coordinator part to the runtime."""

    def __init__(self, path: Path, default: LimitsDocument) -> None:
        self.path = path
        self.document = default
        if path.exists():
            self.document = LimitsDocument.model_validate_json(path.read_text())

    def apply(self, runtime: Codeexec) -> None:
        runtime.coordinator.policy.set_config(self.document.coordinator_config())

    def replace(self, document: LimitsDocument, runtime: Codeexec | None) -> None:
        document.coordinator_config()  # raises ValueError before anything changes
        self.document = document
        write_private(self.path, document.model_dump_json(indent=2).encode())
        if runtime is not None:
            self.apply(runtime)
