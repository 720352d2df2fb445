"""Every rendered object is valid, strictly (no unknown fields), against the Kubernetes schemas
kubernetes-validate ships, for each Kubernetes version it has from the oldest we support on."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes_validate.utils import ValidationError, all_versions, validate
from packaging.version import Version

OLDEST_SUPPORTED = Version("1.25")  # Pod Security admission is GA from 1.25
VERSIONS = [v for v in all_versions() if Version(v) >= OLDEST_SUPPORTED]


def test_the_validator_ships_schemas_from_the_oldest_supported_version() -> None:
    assert VERSIONS and Version(VERSIONS[0]) == Version("1.25.0")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_matches_the_strict_schema(
    manifests: list[dict[str, Any]], version: str
) -> None:
    failures = []
    for obj in manifests:
        try:
            validate(obj, version, strict=True)
        except ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            failures.append(f"{obj['kind']}/{obj['metadata']['name']} {path}: {error.message}")
    assert not failures, "\n".join(failures)


def deployment(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return copy.deepcopy(next(o for o in manifests if o["kind"] == "Deployment"))


def test_strict_validation_refuses_a_misspelt_field(manifests: list[dict[str, Any]]) -> None:
    obj = deployment(manifests)
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFilesytem"] = True  # sic: a typo the API drops
    with pytest.raises(ValidationError) as caught:
        validate(obj, VERSIONS[-1], strict=True)
    assert "readOnlyRootFilesytem" in caught.value.message


def test_validation_refuses_a_wrong_type(manifests: list[dict[str, Any]]) -> None:
    obj = deployment(manifests)
    obj["spec"]["replicas"] = "two"
    with pytest.raises(ValidationError):
        validate(obj, VERSIONS[-1], strict=True)
