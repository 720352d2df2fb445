"""E2E: user mistakes are refused with a problem naming the field, before anything is
recorded, never accepted to end as a platform error; a chunked body over the bound."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
SUBMIT = "/api/v1/executions"


def field_of(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert len(errors) == 1, errors
    field: str = errors[0]["field"]
    return field


def files(*names: str) -> list[dict[str, str]]:
    return [{"name": name, "content": "out hi"} for name in names]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "out hi", "args": ["a\0b"]}, "args.0"),
        ({"source": "out hi", "args": ["ok", "x" * 131072]}, "args.1"),
        ({"source": "out hi", "args": ["x" * 120_000] * 9}, "args"),
        ({"source": "out hi", "version": "9.9"}, "version"),
        ({"source": "out hi", "version": ""}, "version"),
        ({"files": files("main.py", "main.py/x")}, "files.1.name"),
        ({"files": files("x/y", "x")}, "files.1.name"),
    ],
    ids=["nul-arg", "long-arg", "args-total", "version", "empty-version", "file-dir", "dir-file"],
)
def test_a_mistake_is_a_422_naming_the_field_and_nothing_is_recorded(
    fake_server: Server, body: dict[str, Any], field: str
) -> None:
    user = fake_server.new_user_key(f"mistaken-{field}")
    with fake_server.client(user) as client:
        answer = client.post(SUBMIT, json={"language": "fake", **body})
        recorded = client.get(SUBMIT).json()["items"]
    assert field_of(answer) == field
    assert recorded == []


def test_a_version_the_language_has_is_accepted(fake_server: Server) -> None:
    with fake_server.client(fake_server.alice_key) as client:
        answer = client.post(
            SUBMIT,
            params={"wait": "true"},
            json={"language": "fake", "version": "1", "source": "out hi", "args": ["é" * 1000]},
        )
    assert (answer.status_code, answer.json()["status"]) == (200, "succeeded")


def test_a_chunked_body_over_the_bound_answers_413(fake_server: Server) -> None:
    def body() -> Iterator[bytes]:  # no Content-Length: the size shows only while reading
        yield b'{"language": "fake", "source": "'
        for _ in range(80):
            yield b"x" * 2**16
        yield b'"}'

    with fake_server.client(fake_server.alice_key) as client:
        answer = client.post(SUBMIT, content=body(), headers={"Content-Type": "application/json"})
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 413
