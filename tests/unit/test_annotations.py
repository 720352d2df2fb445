"""A submission's annotations: bounded, counted in its payload, recorded with the request and
read back from its event, and old (v3) requests still load without them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from codeexec.domain.annotations import MAX_ANNOTATION_KEYS, MAX_ANNOTATIONS_BYTES
from codeexec.domain.events import ExecutionRequested, from_json, to_json
from codeexec.domain.model import RunSpec, request_digest

SPEC = RunSpec.model_validate({"language": "python", "files": [{"name": "a", "content": "eA=="}]})


def test_annotations_count_in_the_payload_and_the_digest() -> None:
    annotated = SPEC.annotated({"judge0": {"expected_output": "NDIK", "language_id": 71}})
    size = len(json.dumps(annotated.annotations, separators=(",", ":")))
    assert annotated.payload_bytes == SPEC.payload_bytes + size
    assert request_digest(annotated, 0) != request_digest(SPEC, 0)


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"bad key": 1}, "key 'bad key'"),
        ({"k" * 65: 1}, "must be 1-64 characters"),
        ({f"k{i}": i for i in range(MAX_ANNOTATION_KEYS + 1)}, f"at most {MAX_ANNOTATION_KEYS}"),
        ({"k": "x" * MAX_ANNOTATIONS_BYTES}, f"at most {MAX_ANNOTATIONS_BYTES} bytes"),
        ({"k": float("nan")}, "JSON"),
    ],
)
def test_bad_annotations_are_refused_naming_the_field(annotations: dict, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SPEC.annotated(annotations)
    error = caught.value.errors()[0]
    assert error["loc"] == ("annotations",)
    assert message in error["msg"]


def _requested(spec: RunSpec) -> ExecutionRequested:
    return ExecutionRequested(
        event_id=uuid.uuid4(),
        aggregate_id=(execution := uuid.uuid4()),
        aggregate_version=1,
        execution_id=execution,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        correlation_id=execution,
        user_id="u",
        spec=spec,
        request_digest=request_digest(spec, 0),
    )


def test_annotations_round_trip_through_the_recorded_event() -> None:
    event = _requested(SPEC.annotated({"judge0": {"callback_url": "https://example.com/x"}}))
    loaded = from_json(to_json(event))
    assert isinstance(loaded, ExecutionRequested)
    assert loaded.schema_version == 4
    assert loaded.spec.annotations == {"judge0": {"callback_url": "https://example.com/x"}}


def test_a_v3_request_loads_with_no_annotations_and_its_digest_unchanged() -> None:
    doc = json.loads(to_json(_requested(SPEC)))
    doc["schema_version"] = 3
    del doc["spec"]["annotations"]  # what a v3 server wrote
    loaded = from_json(json.dumps(doc))
    assert isinstance(loaded, ExecutionRequested)
    assert loaded.spec.annotations == {}
    assert loaded.request_digest == request_digest(SPEC, 0)
