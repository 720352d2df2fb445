"""A submission's annotations: a small mapping of short keys to JSON values that a client (or
a compatibility API such as Judge0's) records with the request and reads back, recorded
atomically with it and counted in the submitter's storage quota. Nothing runs on them."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, JsonValue, ValidationInfo

MAX_ANNOTATION_KEYS = 32
MAX_ANNOTATIONS_BYTES = 2**20
"""Bound on the annotations' compact JSON: they ride along with every read of the request."""
KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def size_of(annotations: dict[str, Any]) -> int:
    """Bytes of the compact JSON form: what the quota counts."""
    if not annotations:
        return 0
    text = json.dumps(annotations, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return len(text.encode("utf-8", "surrogatepass"))


def _bounded(value: dict[str, JsonValue], info: ValidationInfo) -> dict[str, JsonValue]:
    if isinstance(info.context, dict) and info.context.get("recorded"):
        return value  # recorded history stays readable if the bounds change
    if len(value) > MAX_ANNOTATION_KEYS:
        raise ValueError(f"at most {MAX_ANNOTATION_KEYS} keys are allowed")
    for key in value:
        if not KEY.fullmatch(key):
            raise ValueError(f"key {key[:80]!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    try:
        size = size_of(value)
    except (TypeError, ValueError):
        raise ValueError("values must be JSON (finite numbers)") from None
    if size > MAX_ANNOTATIONS_BYTES:
        raise ValueError(f"must be at most {MAX_ANNOTATIONS_BYTES} bytes as compact JSON")
    return value


Annotations = Annotated[dict[str, JsonValue], AfterValidator(_bounded)]
