"""Response models of the operators' dashboard endpoints: queue history and execution counts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from codeexec_server.queue_history import QueueHistory, QueueSample, QueueSource


class QueueSampleOut(BaseModel):
    time: datetime
    queued: int = Field(ge=0, description="executions waiting in the queue")
    running: int = Field(ge=0, description="executions holding a slot")
    lag: dict[str, int] = Field(description="consumer lag per group, as the bus reports it")

    @classmethod
    def of(cls, sample: QueueSample) -> QueueSampleOut:
        return cls(
            time=sample.time, queued=sample.queued, running=sample.running, lag=dict(sample.lag)
        )


class QueueHistoryOut(BaseModel):
    """The queue over time as this API process sampled it, oldest first. Each API process
    keeps its own ring: `process` names it and `source` says where its figures come from
    (`coordinator`: the queue of the coordinator running in this process; `read_model`: the
    shared read model's counts, the same in every API process)."""

    process: str = Field(description="host:pid of the API process that took the samples")
    source: QueueSource
    started_at: datetime = Field(description="when this process began sampling")
    interval_s: float = Field(ge=0, description="seconds between samples (0: not sampling)")
    window_s: float = Field(ge=0, description="how far back samples are kept")
    capacity: int = Field(ge=0, description="most samples kept")
    max_queue: int = Field(description="the queue capacity in force now")
    max_running: int = Field(description="the global running cap in force now")
    samples: list[QueueSampleOut]

    @classmethod
    def of(
        cls, history: QueueHistory, samples: list[QueueSample], max_queue: int, max_running: int
    ) -> QueueHistoryOut:
        return cls(
            process=history.process,
            source=history.source,
            started_at=history.started_at,
            interval_s=history.interval_s,
            window_s=history.window_s,
            capacity=history.capacity,
            max_queue=max_queue,
            max_running=max_running,
            samples=[QueueSampleOut.of(s) for s in samples],
        )


class ExecutionCountsOut(BaseModel):
    """Executions in the read model, every user's: per status (the terminal status once
    finished, the lifecycle state before) and per lifecycle state."""

    total: int = Field(ge=0)
    by_status: dict[str, int]
    by_state: dict[str, int]
