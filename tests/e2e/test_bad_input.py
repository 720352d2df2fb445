"""E2E: user mistakes are refused with a problem naming the field, before anything is
recorded, never accepted to end as a platform error; resume ids and chunked bodies."""

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


def ids_of(
    client: httpx.Client, execution_id: str, headers: dict[str, Any], **params: Any
) -> list[int]:
    ids = []
    with client.stream(
        "GET", f"{SUBMIT}/{execution_id}/events", headers=headers, params=params, timeout=30
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("id: "):
                ids.append(int(line.removeprefix("id: ")))
    return ids


def test_last_event_id_that_is_not_ascii_digits_is_ignored_not_a_500(fake_server: Server) -> None:
    with fake_server.client(fake_server.alice_key) as client:
        done = client.post(
            SUBMIT, params={"wait": "true"}, json={"language": "fake", "source": "out hi"}
        ).json()
        everything = ids_of(client, done["id"], {})
        for odd in (b"\xb2", "٣".encode(), b"2x", b"-1", b"1e3", b"99999999999999999999"):
            assert ids_of(client, done["id"], {"Last-Event-ID": odd}) == everything, odd
    assert everything[0] == 1 and len(everything) > 3


def test_an_id_beyond_the_last_event_restarts_from_the_beginning(fake_server: Server) -> None:
    with fake_server.client(fake_server.alice_key) as client:
        done = client.post(
            SUBMIT, params={"wait": "true"}, json={"language": "fake", "source": "out hi"}
        ).json()
        everything = ids_of(client, done["id"], {})
        last = everything[-1]
        assert ids_of(client, done["id"], {"Last-Event-ID": str(last)}) == []  # at the end
        assert ids_of(client, done["id"], {"Last-Event-ID": str(last + 1)}) == everything
        assert ids_of(client, done["id"], {}, after=last + 50) == everything
        assert ids_of(client, done["id"], {"Last-Event-ID": "2"}) == everything[2:]


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
