"""E2E: every Judge0 status through the official Judge0 SDK on a real local sandbox, from real
signals, exits, limits and compile errors; and Judge0's inputs that only real code can show
(stdin, arguments, additional files, non-UTF-8 output)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import judge0
import pytest
from judge0 import Status

from tests.e2e.compat_clients import judge0_client
from tests.e2e.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e
PYTHON, C = 71, 50
KILL = "import os, signal\nsignal.signal(signal.{0}, signal.SIG_DFL)\n"
KILL += "os.kill(os.getpid(), signal.{0})\n"  # Python ignores some signals (SIGXFSZ) by default


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server("local", tmp_path_factory.mktemp("data-compat-local"))
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def client(local: Server) -> judge0.Client:
    return judge0_client(local.url, local.alice_key)


def run(
    client: judge0.Client, source: str, language: int = PYTHON, **extra: object
) -> judge0.Submission:
    """Through the SDK's own create-then-poll cycle."""
    done = judge0.run(
        client=client,
        submissions=judge0.Submission(source_code=source, language=language, **extra),
    )
    assert isinstance(done, judge0.Submission)
    return done


@pytest.mark.parametrize(
    ("source", "extra", "status"),
    [
        ('print("hello")', {"expected_output": "hello"}, Status.ACCEPTED),
        ('print("hello")', {"expected_output": "bye"}, Status.WRONG_ANSWER),
        ("while True:\n    pass\n", {"cpu_time_limit": 0.5}, Status.TIME_LIMIT_EXCEEDED),
        ("import time\ntime.sleep(30)\n", {"wall_time_limit": 1}, Status.TIME_LIMIT_EXCEEDED),
        (KILL.format("SIGSEGV"), {}, Status.RUNTIME_ERROR_SIGSEGV),
        (KILL.format("SIGXFSZ"), {}, Status.RUNTIME_ERROR_SIGXFSZ),
        ("import sys\nsys.stdout.write('x' * (3 * 2**20))\n", {}, Status.RUNTIME_ERROR_SIGXFSZ),
        (KILL.format("SIGFPE"), {}, Status.RUNTIME_ERROR_SIGFPE),
        ("import os\nos.abort()\n", {}, Status.RUNTIME_ERROR_SIGABRT),
        ("import sys\nsys.exit(3)\n", {}, Status.RUNTIME_ERROR_NZEC),
        (KILL.format("SIGUSR1"), {}, Status.RUNTIME_ERROR_OTHER),
        (
            "hog = []\nwhile True:\n    hog.append(bytearray(8 * 2**20))\n",
            {"memory_limit": 65536},
            Status.RUNTIME_ERROR_OTHER,
        ),
    ],
    ids=[
        "accepted",
        "wrong-answer",
        "cpu-time",
        "wall-time",
        "sigsegv",
        "sigxfsz",
        "output-limit",
        "sigfpe",
        "sigabrt",
        "nzec",
        "other-signal",
        "memory-limit",
    ],
)
def test_each_status_comes_from_a_real_run(
    client: judge0.Client, source: str, extra: dict[str, object], status: Status
) -> None:
    # `extra` never holds `language`: every case runs Python.
    done = run(client, source, **extra)  # type: ignore[arg-type]
    assert done.status == status, (done.status, done.message, done.stderr)


def test_runtime_errors_carry_the_exit_code_and_signal(client: judge0.Client) -> None:
    nzec = run(client, "import sys\nsys.exit(3)\n")
    assert nzec.exit_code == 3 and nzec.message
    segv = run(client, KILL.format("SIGSEGV"))
    assert segv.exit_signal == 11
    oom = run(
        client, "hog = []\nwhile True:\n    hog.append(bytearray(8 * 2**20))\n", memory_limit=65536
    )
    message = base64.b64decode(oom.message or "").decode()  # base64, as Judge0 sends it
    assert oom.exit_signal == 9 and "memory" in message


def test_a_compile_error_shows_the_compiler_output(client: judge0.Client) -> None:
    done = run(client, "int main( {", language=C)
    assert done.status == Status.COMPILATION_ERROR
    assert "error" in (done.compile_output or "") and done.stdout is None
    ok = run(client, '#include <stdio.h>\nint main(void){puts("hi");return 0;}\n', language=C)
    assert ok.status == Status.ACCEPTED and ok.stdout == "hi\n"


ANSWER = '#include <stdio.h>\nint main(void){printf("%d\\n", ANSWER);return 0;}\n'


def test_compiler_options_reach_the_compiler(client: judge0.Client) -> None:
    # Split as a shell would (quotes kept together), but no shell runs them.
    done = run(client, ANSWER, language=C, compiler_options="-DANSWER=42 '-DUNUSED=a b'")
    assert done.status == Status.ACCEPTED and done.stdout == "42\n"
    done = run(client, ANSWER, language=C, compiler_options="-DANSWER=7")
    assert done.stdout == "7\n"
    assert run(client, ANSWER, language=C).status == Status.COMPILATION_ERROR


def test_bad_compiler_options_are_refused_naming_the_field(local: Server) -> None:
    with httpx.Client(
        base_url=f"{local.url}/judge0", headers={"X-Auth-Token": local.alice_key}
    ) as j0:
        for options, message in [("'-O3", "cannot be split"), ("-Dx=\x00", "NUL")]:
            body = {"language_id": C, "source_code": ANSWER, "compiler_options": options}
            bad = j0.post("/submissions", json=body)
            assert bad.status_code == 422
            (found,) = bad.json()["compiler_options"]
            assert list(bad.json()) == ["compiler_options"] and message in found


def test_a_cancelled_run_is_an_internal_error_and_in_flight_is_queue_or_processing(
    local: Server,
) -> None:
    with httpx.Client(
        base_url=f"{local.url}/judge0", headers={"X-Auth-Token": local.alice_key}
    ) as j0:
        token = j0.post(
            "/submissions",
            json={"language_id": PYTHON, "source_code": "import time\ntime.sleep(60)"},
        ).json()["token"]
        first = j0.get(f"/submissions/{token}").json()["status"]["id"]
        assert first in (1, 2)
        with local.client(local.alice_key) as ours:
            ours.post(f"/api/v1/executions/{token}/cancel")
            ours.get(f"/api/v1/executions/{token}", params={"wait": "true"})
        for _ in range(200):
            status = j0.get(f"/submissions/{token}?fields=status,message").json()
            if status["status"]["id"] > 2:
                break
        assert status["status"] == {"id": 13, "description": "Internal Error"}
        assert "cancel" in status["message"]


def test_stdin_arguments_and_additional_files_reach_the_program(client: judge0.Client) -> None:
    files = judge0.Filesystem(
        content=[judge0.File(name="data/words.txt", content="from the zip\n")]
    )
    source = (
        "import sys\nprint(input(), sys.argv[1:])\nprint(open('data/words.txt').read(), end='')\n"
    )
    done = run(
        client,
        source,
        stdin="typed in",
        command_line_arguments='one "two three"',
        additional_files=files,
    )
    assert done.status == Status.ACCEPTED, done.stderr
    assert done.stdout == "typed in ['one', 'two three']\nfrom the zip\n"


def test_output_that_is_not_utf8_needs_base64(local: Server) -> None:
    with httpx.Client(
        base_url=f"{local.url}/judge0", headers={"X-Auth-Token": local.alice_key}, timeout=70
    ) as j0:
        body = {
            "language_id": PYTHON,
            "source_code": "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe')",
        }
        made = j0.post("/submissions?wait=true", json=body)
        assert made.status_code == 201 and "base64_encoded=true" in made.json()["error"]
        token = made.json()["token"]
        assert j0.get(f"/submissions/{token}").status_code == 400
        encoded = j0.get(f"/submissions/{token}?base64_encoded=true").json()
        assert base64.b64decode(encoded["stdout"]) == b"\xff\xfe"


def test_extra_cpu_time_runs_on_but_is_still_judged_over_the_limit(client: judge0.Client) -> None:
    source = (
        "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end:\n    pass\n"
    )
    done = run(client, source, cpu_time_limit=0.3, cpu_extra_time=1.0)
    assert done.status == Status.TIME_LIMIT_EXCEEDED and done.time is not None and done.time >= 0.3


def test_the_source_is_in_judge0s_file_name(client: judge0.Client) -> None:
    done = run(client, "import sys\nprint(sys.argv[0].rsplit('/', 1)[-1])\n")
    assert done.stdout == "script.py\n"
