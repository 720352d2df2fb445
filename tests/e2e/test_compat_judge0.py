"""E2E: Judge0 CE 1.13.1's API at /judge0, driven by the official Judge0 SDK and plain HTTP on
a fake-sandbox server (the protocol: auth, fields, base64, batches, errors, visibility)."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator

import httpx
import judge0
import pytest
from judge0.base_types import Config

from tests.e2e.compat_clients import judge0_client
from tests.e2e.conftest import Server
from tests.e2e.test_admission_api import user_limits

pytestmark = pytest.mark.e2e
FIELD_NAMES = (  # Judge0 1.13.1's submission serializer, in its order
    "source_code language_id stdin expected_output stdout status_id created_at finished_at time "
    "memory stderr token number_of_runs cpu_time_limit cpu_extra_time wall_time_limit "
    "memory_limit stack_limit max_processes_and_or_threads "
    "enable_per_process_and_thread_time_limit enable_per_process_and_thread_memory_limit "
    "max_file_size compile_output exit_code exit_signal message wall_time compiler_options "
    "command_line_arguments redirect_stderr_to_stdout callback_url additional_files "
    "enable_network status language"
)
JUDGE0_FIELDS = FIELD_NAMES.split()
DEFAULT_FIELDS = {"token", "time", "memory", "stdout", "stderr", "compile_output", "message"}
RAILS_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HELLO = {"language_id": 71, "source_code": "out hello"}  # the fake sandbox's script


@pytest.fixture
def j0(fake_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{fake_server.url}/judge0",
        headers={"X-Auth-Token": fake_server.alice_key},
        timeout=70,
    ) as client:
        yield client


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_the_sdk_runs_a_program_and_judges_its_test_cases(fake_server: Server) -> None:
    client = judge0_client(fake_server.url, fake_server.alice_key)  # reads languages, config
    one = judge0.run(client=client, source_code="out hello", language=judge0.PYTHON)
    assert one.status == judge0.Status.ACCEPTED and one.stdout == "hello\n"
    assert one.time == 0.0 and one.memory == 0 and one.created_at is not None
    cases = [("", "hello"), ("", "goodbye"), judge0.TestCase(input="", expected_output="hello \n")]
    results = judge0.run(
        client=client, source_code="out hello", language=judge0.PYTHON, test_cases=cases
    )
    statuses = [r.status for r in results]
    assert statuses == [judge0.Status.ACCEPTED, judge0.Status.WRONG_ANSWER, judge0.Status.ACCEPTED]
    assert client.version == "1.13.1"


def test_config_info_has_every_key_the_sdk_requires(j0: httpx.Client) -> None:
    info = j0.get("/config_info").json()
    assert set(info) == set(Config.model_fields)
    Config(**info)
    assert info["enable_submission_delete"] is False and info["max_number_of_runs"] == 1


def test_statuses_languages_and_about_are_judge0s(j0: httpx.Client) -> None:
    statuses = j0.get("/statuses").json()
    assert [s["id"] for s in statuses] == list(range(1, 15))
    assert statuses[2] == {"id": 3, "description": "Accepted"}
    languages = j0.get("/languages").json()
    assert {"id": 71, "name": "Python (3.11)"} in languages
    one = j0.get("/languages/71").json()
    assert one["source_file"] == "script.py" and one["compile_cmd"] is None
    missing = j0.get("/languages/9999")
    assert missing.status_code == 404 and "9999" in missing.json()["error"]
    assert j0.get("/about").json()["version"] == "1.13.1"
    assert j0.get("/version").text == "1.13.1"


def test_default_fields_all_fields_and_a_selection(j0: httpx.Client) -> None:
    done = j0.post("/submissions?wait=true", json=HELLO)
    assert done.status_code == 201
    assert set(done.json()) == DEFAULT_FIELDS | {"status"}
    token = done.json()["token"]
    everything = j0.get(f"/submissions/{token}?fields=*").json()
    assert list(everything) == JUDGE0_FIELDS
    assert RAILS_TIME.match(everything["created_at"]) and RAILS_TIME.match(
        everything["finished_at"]
    )
    assert everything["time"] == "0.0" and everything["cpu_time_limit"] == "5.0"
    assert everything["language"] == {"id": 71, "name": "Python (3.11)"}
    picked = j0.get(f"/submissions/{token}?fields=stdout,status_id").json()
    assert picked == {"stdout": "hello\n", "status_id": 3}


def test_unknown_fields_answer_400_naming_them(j0: httpx.Client) -> None:
    token = j0.post("/submissions", json=HELLO).json()["token"]
    bad = j0.get(f"/submissions/{token}?fields=stdout,started_at,bogus")
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid fields: [started_at, bogus]"}


def test_base64_in_and_out(j0: httpx.Client) -> None:
    body = {"language_id": 71, "source_code": b64("out héllo"), "stdin": b64("in")}
    token = j0.post("/submissions?base64_encoded=true", json=body).json()["token"]
    encoded = j0.get(f"/submissions/{token}?base64_encoded=true&fields=*").json()
    while encoded["status"]["id"] < 3:
        encoded = j0.get(f"/submissions/{token}?base64_encoded=true&fields=*").json()
    assert base64.b64decode(encoded["stdout"]) == "héllo\n".encode()
    assert base64.b64decode(encoded["source_code"]) == b"out h\xc3\xa9llo"
    assert base64.b64decode(encoded["stdin"]) == b"in"
    plain = j0.get(f"/submissions/{token}?fields=stdout,source_code").json()
    assert plain == {"stdout": "héllo\n", "source_code": "out héllo"}


def test_invalid_base64_is_refused_in_judge0s_shape(j0: httpx.Client) -> None:
    body = {"language_id": 71, "source_code": "not base64!", "stdin": "@@"}
    bad = j0.post("/submissions?base64_encoded=true", json=body)
    assert bad.status_code == 422
    assert bad.json() == {"source_code": ["is not valid base64"], "stdin": ["is not valid base64"]}


def test_judge0s_validations_and_unknown_languages(j0: httpx.Client) -> None:
    bad = j0.post("/submissions", json={"language_id": 9999, "source_code": "x"})
    assert bad.status_code == 422
    assert bad.json() == {"language_id": ["language with id 9999 doesn't exist"]}
    bad = j0.post(
        "/submissions",
        json={**HELLO, "memory_limit": 100, "wall_time_limit": 999, "enable_network": True},
    )
    assert bad.json() == {
        "memory_limit": ["must be greater than or equal to 2048"],
        "wall_time_limit": ["must be less than or equal to 60"],
        "enable_network": ["enabling network is not allowed"],
    }
    bad = j0.post("/submissions", json={**HELLO, "compiler_options": "-O3", "source_code": ""})
    assert bad.json() == {
        "source_code": ["can't be blank"],
        "compiler_options": ["setting compiler options is only allowed for compiled languages"],
    }
    assert j0.post("/submissions", content=b"{oops").status_code == 400


def test_batches_create_and_read_with_errors_per_item(j0: httpx.Client) -> None:
    items = [HELLO, {"language_id": 9999, "source_code": "x"}, {**HELLO, "stdin": "two"}]
    made = j0.post("/submissions/batch", json={"submissions": items})
    assert made.status_code == 201
    answers = made.json()
    assert "token" in answers[0] and "token" in answers[2]
    assert answers[1] == {"language_id": ["language with id 9999 doesn't exist"]}
    tokens = f"{answers[0]['token']},{uuid.uuid4()},{answers[2]['token']}"
    read = j0.get(f"/submissions/batch?tokens={tokens}&fields=token,stdin").json()["submissions"]
    assert read[0]["token"] == answers[0]["token"] and read[1] is None
    assert read[2]["stdin"] == "two"
    too_many = j0.post("/submissions/batch", json={"submissions": [HELLO] * 21})
    assert too_many.status_code == 400 and "less than or equal to 20" in too_many.json()["error"]
    none = j0.post("/submissions/batch", json={"submissions": [{"language_id": 1}]})
    assert none.status_code == 422


def test_tokens_are_visible_only_to_their_owner(fake_server: Server, j0: httpx.Client) -> None:
    token = j0.post("/submissions", json=HELLO).json()["token"]
    bob = {"X-Auth-Token": fake_server.bob_key}
    other = j0.get(f"/submissions/{token}", headers=bob)
    assert other.status_code == 404 and "error" in other.json()
    batch = j0.get(f"/submissions/batch?tokens={token}", headers=bob).json()
    assert batch == {"submissions": [None]}
    admin = j0.get(f"/submissions/{token}", headers={"X-Auth-Token": fake_server.admin_key})
    assert admin.status_code == 200


def test_keys_as_x_auth_token_or_bearer_and_anonymous_refused(fake_server: Server) -> None:
    url = f"{fake_server.url}/judge0/languages"
    assert httpx.get(url, headers={"X-Auth-Token": fake_server.alice_key}).status_code == 200
    bearer = {"Authorization": f"Bearer {fake_server.alice_key}"}
    assert httpx.get(url, headers=bearer).status_code == 200
    for headers in ({}, {"X-Auth-Token": "cx_wrong"}):
        refused = httpx.get(url, headers=headers)
        assert refused.status_code == 401 and "error" in refused.json()
    made = httpx.post(f"{fake_server.url}/judge0/submissions", json=HELLO)
    assert made.status_code == 401


def test_each_submission_is_an_execution_of_ours(fake_server: Server, j0: httpx.Client) -> None:
    token = j0.post("/submissions?wait=true", json=HELLO).json()["token"]
    with fake_server.client(fake_server.alice_key) as ours:
        execution = ours.get(f"/api/v1/executions/{token}").json()
        assert execution["status"] == "succeeded" and execution["stdout"] == "hello\n"
        events = ours.get(f"/api/v1/executions/{token}/events", params={"follow": "false"})
        assert "ExecutionRequested" in events.text and "ExecutionCompleted" in events.text


def test_our_rate_limit_refuses_judge0_submissions(fake_server: Server) -> None:
    with user_limits(fake_server, rate_limit=1, rate_window_s=3600) as key:
        url, headers = f"{fake_server.url}/judge0/submissions", {"X-Auth-Token": key}
        assert httpx.post(url, json=HELLO, headers=headers).status_code == 201
        refused = httpx.post(url, json=HELLO, headers=headers)
        assert refused.status_code == 429 and "rate limit" in refused.json()["error"]
        assert refused.headers["Retry-After"]


def test_listing_pages_and_deleting_is_off(j0: httpx.Client) -> None:
    for _ in range(3):
        j0.post("/submissions", json=HELLO)
    page = j0.get("/submissions?page=2&per_page=2&fields=token").json()
    assert len(page["submissions"]) == 2 and page["meta"]["current_page"] == 2
    assert page["meta"]["prev_page"] == 1
    token = page["submissions"][0]["token"]
    deleted = j0.delete(f"/submissions/{token}")
    assert deleted.status_code == 400 and deleted.json() == {"error": "delete not allowed"}
