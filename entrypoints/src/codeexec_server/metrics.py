"""Prometheus metrics: queue, executions, latencies, consumer lag, dead letters and replays."""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codeexec.domain.coordinator import QueueStatus
from codeexec.domain.events import (
    TERMINAL_EVENT_TYPES,
    DomainEvent,
    ExecutionRequested,
    SubmissionRefused,
)
from codeexec.domain.execution import state_after, status_of
from codeexec.domain.operations_events import ReplayProgressed
from codeexec.runtime import Codeexec

log = logging.getLogger(__name__)
LEVELS = {"ok": 0, "warning": 1, "critical": 2}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
ENDING_ROLES = frozenset({"coordinator", "saga", "worker"})  # record terminal events
REQUESTS_REMEMBERED = 100_000  # executions in flight timed at once (about 10 MiB at most)


@dataclass(frozen=True)
class RoleGauges:
    """What the operators' gauges show, read before each scrape."""

    queue: QueueStatus
    dead_letters_open: int
    dead_letters_level: str
    oldest_open: datetime | None
    replay_states: Tally[str]

    @classmethod
    async def read(cls, runtime: Codeexec) -> RoleGauges:
        """Through the operator API: it answers whether or not the roles run here."""
        operations = runtime.operations
        (count, level), oldest = await operations.dead_letter_backlog()
        return cls(
            queue=await operations.queue_status(),
            dead_letters_open=count,
            dead_letters_level=level,
            oldest_open=oldest,
            replay_states=Tally(s.state.value for s in await operations.replays()),
        )


class RuntimeCollector(Collector):
    """Reads gauges from the runtime at scrape time (the roles' part read beforehand)."""

    def __init__(self) -> None:
        self.runtime: Codeexec | None = None
        self.lag: dict[str, int] = {}  # read from the bus (async) just before each scrape
        self.roles: RoleGauges | None = None
        self.counts: Mapping[str, int] = {}

    async def refresh(self) -> None:
        """Read the lag from the bus and the roles' gauges in the store thread (StoreBusy
        if it does not answer), before each scrape."""
        runtime = self.runtime
        if runtime is not None and runtime.started:
            self.lag = await runtime.backlog()
            self.roles = await RoleGauges.read(runtime)
            self.counts = await runtime.queries.counts()

    def collect(self) -> Iterator[Metric]:
        runtime, roles = self.runtime, self.roles
        if runtime is None or not runtime.started or roles is None:
            return
        status = roles.queue
        queue = GaugeMetricFamily("codeexec_queue_depth", "executions waiting in the queue")
        queue.add_metric([], status.queued)
        yield queue
        running = GaugeMetricFamily("codeexec_running", "executions holding a slot")
        running.add_metric([], status.running)
        yield running
        states = GaugeMetricFamily(
            "codeexec_executions", "executions by lifecycle state", labels=["state"]
        )
        for state, n in self.counts.items():
            states.add_metric([state], n)
        yield states
        lag = GaugeMetricFamily(
            "codeexec_consumer_lag", "unconsumed messages per consumer group", labels=["group"]
        )
        for group, n in self.lag.items():
            lag.add_metric([group], n)
        yield lag
        size = GaugeMetricFamily(
            "codeexec_store_bytes",
            "event store size: its SQLite files (with -wal and -shm), or in memory the "
            "stored events' bytes",
        )
        size.add_metric([], runtime.store_bytes())
        yield size
        wakeups = runtime.live_feed_wakeups()
        if wakeups is not None:
            woken = CounterMetricFamily(
                "codeexec_live_feed_wakeups",
                "events of other processes, read from the bus, that woke this process's"
                " event streams and waits",
            )
            woken.add_metric([], wakeups)
            yield woken
        yield from self._operations(runtime, roles)

    def _operations(self, runtime: Codeexec, roles: RoleGauges) -> Iterator[GaugeMetricFamily]:
        backlog = GaugeMetricFamily(
            "codeexec_dead_letters_open", "dead letters parked, retrying or exhausted"
        )
        backlog.add_metric([], roles.dead_letters_open)
        yield backlog
        gauge = GaugeMetricFamily(
            "codeexec_dead_letters_level", "dead-letter backlog: 0 ok, 1 warning, 2 critical"
        )
        gauge.add_metric([], LEVELS.get(roles.dead_letters_level, 2))
        yield gauge
        oldest = roles.oldest_open
        age = GaugeMetricFamily(
            "codeexec_dead_letters_oldest_open_seconds", "age of the oldest open dead letter"
        )
        age.add_metric([], (runtime.clock.now() - oldest).total_seconds() if oldest else 0.0)
        yield age
        by_state = dict.fromkeys(("running", "paused", "completed", "cancelled"), 0)
        by_state.update(roles.replay_states)
        sessions = GaugeMetricFamily(
            "codeexec_replay_sessions", "replay sessions by state", labels=["state"]
        )
        for state, n in by_state.items():
            sessions.add_metric([state], n)
        yield sessions


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runtime_collector = RuntimeCollector()
        self.registry.register(self.runtime_collector)
        self.http_latency = Histogram(
            "codeexec_http_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.execution_latency = Histogram(
            "codeexec_execution_seconds",
            "submission to terminal state",
            ["status"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.finished = Counter(
            "codeexec_executions_finished",
            "executions by terminal status",
            ["status"],
            registry=self.registry,
        )
        self.refused = Counter(
            "codeexec_submissions_refused",
            "submissions refused on admission, by the limit that refused them",
            ["limit"],
            registry=self.registry,
        )
        # Request times of executions recorded here and not finished yet (the latency's
        # start), the oldest forgotten first beyond the bound.
        self._requested: OrderedDict[UUID, datetime] = OrderedDict()
        self._times_runs = False
        self.replayed = Counter(
            "codeexec_events_replayed",
            "events published by replay sessions (dry runs send none)",
            registry=self.registry,
        )

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def attach(self, runtime: Codeexec) -> None:
        self.runtime_collector.runtime = runtime
        # Runs end where these roles run: elsewhere (`codeexec api`) no request is timed here.
        self._times_runs = bool(set(runtime.settings.roles) & ENDING_ROLES)
        runtime.on_recorded(lambda events: self._on_record(runtime, events))

    def _on_record(self, runtime: Codeexec, events: Sequence[DomainEvent]) -> None:
        # Called after each write of the store: it must never raise into its caller.
        try:
            self._observe(runtime, events)
        except Exception:
            log.exception("metrics could not observe recorded events")

    def _observe(self, runtime: Codeexec, events: Sequence[DomainEvent]) -> None:
        for event in events:
            if isinstance(event, ExecutionRequested):
                if not self._times_runs:
                    continue
                self._requested[event.execution_id] = event.time
                while len(self._requested) > REQUESTS_REMEMBERED:
                    self._requested.popitem(last=False)
            elif isinstance(event, ReplayProgressed):
                self.replayed.inc(event.sent)
            elif isinstance(event, SubmissionRefused):
                self.refused.labels(event.limit).inc()
            elif isinstance(event, TERMINAL_EVENT_TYPES):
                state = state_after(event)
                assert state is not None
                status = status_of(state, getattr(event, "result", None))
                self.finished.labels(status).inc()
                # Timed from this process's own record of the request: no read on the loop.
                requested = self._requested.pop(event.execution_id, None)
                if requested is None:
                    continue  # requested in another process (or before a restart)
                seconds = (event.time - requested).total_seconds()
                self.execution_latency.labels(status).observe(max(seconds, 0.0))


class RequestTimer:
    """ASGI middleware recording request latency by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def recorded(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.http_latency.labels(scope["method"], path, str(status[0])).observe(
                time.perf_counter() - started
            )


router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    app_metrics: Metrics = request.app.state.metrics
    await app_metrics.runtime_collector.refresh()
    return Response(generate_latest(app_metrics.registry), media_type=CONTENT_TYPE_LATEST)
