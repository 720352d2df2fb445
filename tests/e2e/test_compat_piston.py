"""E2E: Piston v2's API at /piston, driven by the real clients (npm piston-client, which sends
JSON as text/plain and its key in the URL; piston-rspy, which sends a bare `Authorization: KEY`)
and plain HTTP, on a fake-sandbox server for the protocol and a local one for real runs."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

import httpx
import pytest

from tests.e2e.compat_clients import piston_node, piston_rspy
from tests.e2e.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e
EXECUTE = "/piston/api/v2/execute"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server("local", tmp_path_factory.mktemp("data-piston-local"))
    yield running
    stop_server(running)


def with_key(server: Server) -> str:
    """The server's URL with alice's key as the user info's password (HTTP Basic auth)."""
    return server.url.replace("http://", f"http://alice:{server.alice_key}@") + "/piston"


def execute(server: Server, body: object, **headers: str) -> httpx.Response:
    sent = {"Authorization": f"Bearer {server.alice_key}", **headers}
    return httpx.post(f"{server.url}{EXECUTE}", content=json.dumps(body), headers=sent, timeout=70)


def test_the_npm_client_runs_code_with_its_key_in_the_url(local: Server) -> None:
    runtimes = piston_node(with_key(local), {"call": "runtimes"})
    assert any(r["language"] == "python" and "py" in r["aliases"] for r in runtimes)
    code = "import sys\nprint(input(), sys.argv[1:])\nprint('err', file=sys.stderr)"
    answer = piston_node(
        with_key(local),
        {"call": "execute", "language": "python", "code": code, "config": {"stdin": "typed"}},
    )
    assert answer["language"] == "python" and answer["run"]["code"] == 0
    assert answer["run"]["stdout"] == "typed ['1', '2', '3']\n"  # the client's default args
    assert answer["run"]["stderr"] == "err\n"
    assert answer["run"]["output"] == "typed ['1', '2', '3']\nerr\n"


def test_piston_rspy_runs_code_with_a_bare_authorization_key(local: Server) -> None:
    runtimes = piston_rspy(local.url, local.alice_key, {"call": "runtimes"})
    assert any(r["language"] == "c++" for r in runtimes)
    answer = piston_rspy(
        local.url,
        local.alice_key,
        {
            "call": "execute",
            "language": "python",
            "code": "import sys\nprint(sys.argv[1:])",
            "args": ["a b", "c"],
        },
    )
    assert answer["status"] == 200 and answer["run"]["stdout"] == "['a b', 'c']\n"
    assert answer["compile"] is None
    failed = piston_rspy(
        local.url, "cx_wrong", {"call": "execute", "language": "python", "code": ""}
    )
    assert failed["status"] == 401 and "unknown or revoked API key" in failed["run"]["stderr"]


def test_compiled_languages_answer_a_compile_stage(local: Server) -> None:
    hello = '#include <stdio.h>\nint main(void){puts("hi");return 0;}\n'
    answer = piston_rspy(
        local.url, local.alice_key, {"call": "execute", "language": "c", "code": hello}
    )
    assert answer["compile"]["code"] == 0 and answer["run"]["stdout"] == "hi\n"
    broken = execute(
        local, {"language": "c++", "version": "*", "files": [{"content": "int main( {"}]}
    )
    body = broken.json()
    assert broken.status_code == 200 and body["language"] == "c++"
    assert body["compile"]["code"] == 1 and "error" in body["compile"]["output"]
    assert body["run"] == body["compile"]  # the run stage never started, as Piston reports it


@pytest.mark.parametrize(
    ("code", "limits", "status", "signal"),
    [
        ("import sys\nsys.exit(4)", {}, "RE", None),
        ("import os\nos.abort()", {}, "SG", "SIGABRT"),
        ("while True:\n    pass", {"run_cpu_time": 500}, "TO", "SIGKILL"),
        ("import time\ntime.sleep(20)", {"run_timeout": 500}, "TO", "SIGKILL"),
        ("print('x' * 3000000)", {}, "OL", "SIGKILL"),
    ],
    ids=["exit-code", "signal", "cpu-time", "wall-time", "output"],
)
def test_run_statuses_are_isolates(
    local: Server, code: str, limits: dict[str, int], status: str, signal: str | None
) -> None:
    body = {"language": "py", "version": "3.x", "files": [{"content": code}], **limits}
    run = execute(local, body).json()["run"]
    assert (run["status"], run["signal"]) == (status, signal), run
    assert run["wall_time"] is not None and run["message"]
    if status == "RE":
        assert run["code"] == 4


def test_text_plain_json_and_every_way_of_giving_the_key(fake_server: Server) -> None:
    body = {"language": "python", "version": "*", "files": [{"content": "out hi"}]}
    plain = execute(fake_server, body, **{"Content-Type": "text/plain;charset=UTF-8"})
    assert plain.status_code == 200 and plain.json()["run"]["stdout"] == "hi\n"
    url = f"{fake_server.url}{EXECUTE}"
    for auth in (
        {"Authorization": fake_server.alice_key},
        {"Authorization": f"Bearer {fake_server.alice_key}"},
    ):
        assert httpx.post(url, json=body, headers=auth, timeout=30).status_code == 200
    basic = httpx.post(url, json=body, auth=("alice", fake_server.alice_key), timeout=30)
    assert basic.status_code == 200
    refused = httpx.post(url, json=body, timeout=30)
    assert refused.status_code == 401 and "message" in refused.json()


def test_versions_are_semver_ranges_or_absent(fake_server: Server) -> None:
    def version_of(body: Mapping[str, object]) -> httpx.Response:
        return execute(fake_server, {"language": "python", "files": [{"content": "out v"}], **body})

    for accepted in ({"version": "*"}, {"version": "3.x"}, {"version": "^3.11"}, {}):
        answer = version_of(accepted)
        assert answer.status_code == 200 and answer.json()["version"] == "3.11", accepted
    unknown = version_of({"version": "2.x"})
    assert unknown.status_code == 400
    assert unknown.json() == {"message": "python-2.x runtime is unknown"}
    assert version_of({"version": "not a range!"}).status_code == 400


def test_files_are_named_and_decoded_as_piston_does(fake_server: Server) -> None:
    hexed = b"out hex".hex()
    body = {
        "language": "python",
        "files": [{"content": "out a"}, {"content": hexed, "encoding": "hex"}],
    }
    assert execute(fake_server, body).status_code == 200
    bad_hex = {
        "language": "python",
        "files": [{"content": "out a"}, {"content": "zz", "encoding": "hex"}],
    }
    assert execute(fake_server, bad_hex).json() == {"message": "files[1].content is not valid hex"}
    only_binary = {"language": "python", "files": [{"content": "b3V0IGE=", "encoding": "base64"}]}
    refused = execute(fake_server, only_binary)
    assert refused.json() == {"message": "files must include at least one utf8 encoded file"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"files": []}, "language is required as a string"),
        ({"language": "python"}, "files is required as an array"),
        (
            {"language": "python", "files": [{"name": "x"}]},
            "files[0].content is required as a string",
        ),
        (
            {"language": "python", "files": [{"content": "out"}], "run_timeout": 10**9},
            "run_timeout cannot exceed the configured limit of 60000",
        ),
        (
            {"language": "python", "files": [{"content": "out"}], "run_memory_limit": "lots"},
            "If specified, run_memory_limit must be a number",
        ),
        (
            {"language": "python", "files": [{"content": "out", "name": "../x"}]},
            "name: a file name must not contain '.' or '..'",
        ),
        (
            {"language": "python", "files": [{"content": "out", "name": "my file.py"}]},
            "files.0.name: String should match pattern",
        ),
    ],
    ids=[
        "no-language",
        "no-files",
        "no-content",
        "over-limit",
        "not-a-number",
        "dot-dot",
        "space-in-name",
    ],
)
def test_errors_are_400_with_a_message(fake_server: Server, body: object, message: str) -> None:
    refused = execute(fake_server, body)
    assert refused.status_code == 400 and message in refused.json()["message"]
    assert set(refused.json()) == {"message"}


def test_each_execute_is_an_execution_of_ours(fake_server: Server) -> None:
    body = {"language": "python", "files": [{"content": "out mine"}]}
    execute(fake_server, body)
    with fake_server.client(fake_server.alice_key) as ours:
        latest = ours.get("/api/v1/executions", params={"limit": 1}).json()["items"][0]
        assert latest["stdout"] == "mine\n" and latest["user_id"] == "alice"
