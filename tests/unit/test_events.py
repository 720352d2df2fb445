"""The event contract: every type round-trips, old versions load, every type is routed."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeexec.domain.events import (
    EVENT_TYPES,
    ExecutionRequested,
    ExecutionScheduled,
    current_version,
    derive_event_id,
    from_document,
    from_json,
    to_document,
    to_json,
)
from codeexec.domain.limits import LimitsDocument, ResourceMaxima, UserLimitsModel
from codeexec.domain.model import RunResult, SandboxStatus, request_digest
from codeexec.domain.operations_events import ReplayFilter
from codeexec.domain.routing import EXECUTION_EVENTS, ROUTES, TOPICS, topics_for
from tests.unit.factories import script

SAMPLE_PAYLOADS: dict[str, dict[str, object]] = {
    "ExecutionRequested": {
        "spec": script("out hi"),
        "priority": 3,
        "idempotency_key": "k",
        "request_digest": request_digest(script("out hi"), 3),
    },
    "SubmissionRefused": {
        "reason": "storage_quota",
        "limit": "storage_quota_bytes",
        "message": "storage quota of 10 bytes per 86400s exceeded",
        "request_digest": request_digest(script("out hi"), 0),
        "payload_bytes": 6,
        "language": "fake",
        "priority": 0,
    },
    "ExecutionQueued": {"priority": 0, "queue_depth": 4},
    "ExecutionRejected": {"reason": "rate_limited", "message": "rate limit of 1 per 60s"},
    "ExecutionScheduled": {"sandbox_id": "cx-1"},
    "ExecutionStarted": {"sandbox_id": "cx-1", "worker_id": "w"},
    "ExecutionOutput": {"stream": "stdout", "data": "héllo\x00\xff".encode("latin-1")},
    "ExecutionCancelRequested": {"requested_by": "alice"},
    "ExecutionCompleted": {
        "result": RunResult(status=SandboxStatus.SUCCEEDED, exit_code=0, stdout=b"\xe2\x82\xac")
    },
    "ExecutionFailed": {"reason": "sandbox lost"},
    "ExecutionTimedOut": {"deadline": datetime(2026, 1, 1, tzinfo=UTC)},
    "ExecutionCancelled": {"stage": "queued"},
    "SagaStarted": {"sandbox_id": "cx-1", "deadline": datetime(2026, 1, 1, tzinfo=UTC)},
    "SandboxStopRequested": {"sandbox_id": "cx-1", "reason": "cancel"},
    "SlotReleased": {},
    "SagaCompleted": {"outcome": "ExecutionCompleted"},
    "ReplayRequested": {
        "filters": ReplayFilter(event_types=("ExecutionCompleted",), until_position=9),
        "target_topic": "replay_scratch",
        "batch_size": 100,
    },
    "ReplayProgressed": {"position": 9, "matched": 3, "sent": 3, "skipped": 6, "failed": 0},
    "ReplayPaused": {"by": "root"},
    "ReplayResumed": {"by": "root"},
    "ReplayCompleted": {"matched": 3},
    "ReplayCancelled": {"by": "root"},
    "DeadLetterParked": {
        "group": "saga",
        "original_topic": "execution_events",
        "partition": 2,
        "offset": 7,
        "key": "k",
        "payload": b'{"not": "valid"}',
        "headers": {"position": "7"},
        "event_type": "ExecutionQueued",
        "category": "ExecutionQueued",
        "error": "boom",
        "attempts": 3,
    },
    "DeadLetterRetryScheduled": {"attempt": 1, "due_at": datetime(2026, 1, 1, tzinfo=UTC)},
    "DeadLetterRetried": {"attempt": 1, "by": "auto"},
    "DeadLetterRetryFailed": {"attempt": 1, "error": "boom", "exhausted": False},
    "DeadLetterResolved": {"attempt": 2},
    "DeadLetterDiscarded": {"by": "root", "reason": "obsolete"},
    "DeadLetterArchived": {"by": "root"},
    "LimitsChanged": {
        "limits": LimitsDocument(
            max_running=3,
            user_limits={"bob": UserLimitsModel(rate_limit=5)},
            max_resource_limits=ResourceMaxima(wall_time_s=20.0),
        ),
        "by": "root",
    },
}


def sample(type_name: str, **overrides: object):  # type: ignore[no-untyped-def]
    aggregate_id = uuid4()
    fields = {
        "event_id": derive_event_id(aggregate_id, 1),
        "aggregate_id": aggregate_id,
        "aggregate_version": 1,
        "execution_id": aggregate_id,
        "user_id": "alice",
        "time": datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
        "correlation_id": uuid4(),
        "causation_id": None,
        **SAMPLE_PAYLOADS[type_name],
        **overrides,
    }
    return EVENT_TYPES[type_name](**fields)


def test_every_event_type_has_a_sample_and_a_route() -> None:
    assert set(SAMPLE_PAYLOADS) == set(EVENT_TYPES) == set(ROUTES)
    for type_name in EVENT_TYPES:
        assert EXECUTION_EVENTS in topics_for(type_name)
        assert all(topic in TOPICS for topic in topics_for(type_name))


@pytest.mark.parametrize("type_name", sorted(EVENT_TYPES))
def test_every_event_type_round_trips_through_json(type_name: str) -> None:
    event = sample(type_name)
    wire = json.dumps(to_document(event))
    assert from_document(json.loads(wire)) == event
    assert json.loads(wire)["schema_version"] == current_version(type(event))
    assert from_json(to_json(event)) == event


@given(data=st.binary(max_size=512))
def test_output_bytes_survive_json_exactly(data: bytes) -> None:
    event = sample("ExecutionOutput", data=data)
    assert from_document(json.loads(json.dumps(to_document(event)))).data == data  # type: ignore[attr-defined]


def test_a_stored_v1_request_loads_as_the_current_version() -> None:
    current = sample("ExecutionRequested")
    doc = to_document(current)
    doc.pop("spec")
    doc.update(schema_version=1, language="python", source="print('é')", filename="main.py")
    loaded = from_document(dict(doc))
    assert from_json(json.dumps(doc)) == loaded
    assert isinstance(loaded, ExecutionRequested)
    assert loaded.spec.language == "python"
    assert loaded.spec.files[0].content == "print('é')".encode()
    assert loaded.spec.files[0].name == "main.py"


def test_a_stored_v2_request_gets_the_digest_a_repeat_of_it_computes_today() -> None:
    current = sample("ExecutionRequested")
    doc = to_document(current)
    digest = doc.pop("request_digest")
    doc["schema_version"] = 2
    loaded = from_json(json.dumps(doc))
    assert isinstance(loaded, ExecutionRequested)
    assert loaded.request_digest == digest == request_digest(loaded.spec, loaded.priority)
    assert loaded == current


def test_a_stored_v1_task_drops_its_copy_of_the_spec() -> None:
    # Before v2 every scheduled task stored the request's payload a second time.
    current = sample("ExecutionScheduled")
    doc = to_document(current)
    doc.update(schema_version=1, spec=to_document(sample("ExecutionRequested"))["spec"])
    loaded = from_json(json.dumps(doc))
    assert isinstance(loaded, ExecutionScheduled)
    assert loaded == current and "spec" not in to_document(loaded)


def test_the_request_digest_tells_specs_and_priorities_apart() -> None:
    spec = script("out hi")
    assert request_digest(spec, 0) == request_digest(script("out hi"), 0)
    assert request_digest(spec, 0) != request_digest(spec, 1)
    assert request_digest(spec, 0) != request_digest(script("out ho"), 0)
    assert request_digest(spec, 0).startswith("sha256:")


def test_events_are_strict_about_unknown_fields_types_and_versions() -> None:
    doc = to_document(sample("ExecutionQueued"))
    with pytest.raises(ValueError):
        from_document({**doc, "surprise": 1})
    with pytest.raises(ValueError):
        from_document({**doc, "type": "NoSuchEvent"})
    with pytest.raises(ValueError):
        from_document({**doc, "schema_version": 99})
    with pytest.raises(ValueError):
        from_document({**doc, "queue_depth": "many"})


def test_bytes_travel_as_base64_on_the_wire() -> None:
    doc = to_document(sample("ExecutionOutput", data=b"\xff\xfe"))
    assert doc["data"] == base64.b64encode(b"\xff\xfe").decode()


@pytest.mark.parametrize("name", ["..", "../etc/passwd", "a/../b", "./x", "/abs", "a//b", ""])
def test_file_names_cannot_leave_the_work_dir(name: str) -> None:
    from pydantic import ValidationError

    from codeexec.domain.model import SourceFile

    with pytest.raises(ValidationError):
        SourceFile(name=name, content=b"")


def test_file_names_must_be_unique_within_a_run() -> None:
    from pydantic import ValidationError

    from codeexec.domain.model import RunSpec, SourceFile

    with pytest.raises(ValidationError, match="unique"):
        RunSpec(
            language="c",
            files=[SourceFile(name="a.c", content=b""), SourceFile(name="a.c", content=b"")],
        )
    assert RunSpec(language="c", files=[SourceFile(name="src/.hidden.c", content=b"")])
