"""Unit: the compat layers' pure rules: Judge0's status mapping and output comparison, its
timestamp and decimal forms, its request checks; Piston's runtime choice and request checks;
the keys peers' clients send; which callback addresses are refused."""

from __future__ import annotations

import base64
import signal
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from codeexec_server.compat.judge0.callbacks import CallbackRefused, checked_address
from codeexec_server.compat.judge0.catalog import Judge0Config
from codeexec_server.compat.judge0.request import SubmissionIn, check_rules
from codeexec_server.compat.judge0.view import (
    Submission,
    decimal,
    judge0_time,
    judged,
    status_id,
)
from codeexec_server.compat.keys import presented_key
from codeexec_server.compat.piston.request import PistonRejected, parse
from codeexec_server.compat.piston.runtimes import choose
from codeexec_server.limits import LimitsDocument, ResourceMaxima
from starlette.requests import Request

from codeexec.domain.model import Limits
from codeexec.ports.read_model import ExecutionView
from codeexec.ports.sandbox import Language

NOW = datetime(2024, 4, 17, 23, 28, 19, 123456, tzinfo=UTC)


def view(status: str, state: str = "completed", **extra: object) -> ExecutionView:
    return ExecutionView(
        id=uuid4(),
        user_id="u",
        language="python",
        version="3.11",
        priority=0,
        state=state,
        status=status,
        created_at=NOW,
        updated_at=NOW,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("our", "extra", "judge0"),
    [
        ("time_limit_exceeded", {}, 5),
        ("compilation_error", {}, 6),
        ("signaled", {"signal": signal.SIGSEGV}, 7),
        ("signaled", {"signal": signal.SIGXFSZ}, 8),
        ("output_limit_exceeded", {}, 8),
        ("signaled", {"signal": signal.SIGFPE}, 9),
        ("signaled", {"signal": signal.SIGABRT}, 10),
        ("runtime_error", {"exit_code": 1}, 11),
        ("signaled", {"signal": signal.SIGTERM}, 12),
        ("memory_limit_exceeded", {"signal": 9}, 12),
        ("internal_error", {}, 13),
        ("cancelled", {}, 13),
        ("rejected", {}, 13),
    ],
)
def test_our_terminal_statuses_map_to_judge0s(
    our: str, extra: dict[str, object], judge0: int
) -> None:
    assert status_id(view(our, **extra), {}) == judge0


def test_in_flight_is_in_queue_then_processing() -> None:
    assert [status_id(view(s, state=s), {}) for s in ("requested", "queued", "scheduled")] == [
        1
    ] * 3
    assert status_id(view("running", state="running"), {}) == 2


def test_success_is_accepted_or_wrong_answer_as_judge0_compares() -> None:
    expected = {"expected_output": base64.b64encode(b"1 2\n3").decode()}
    assert status_id(view("succeeded", stdout=b"1 2  \n3\n\n"), expected) == 3
    assert status_id(view("succeeded", stdout=b"1  2\n3"), expected) == 4
    assert status_id(view("succeeded", stdout=b"anything"), {}) == 3
    over = {"cpu_time_limit": 1.0}
    assert status_id(view("succeeded", cpu_time_s=1.5), over) == 5  # within the extra time


def test_judged_output_drops_trailing_whitespace_per_line_and_at_the_end() -> None:
    assert judged(b"a \t\nb\0\n\n") == b"a\nb"
    assert judged(b" a") == b" a" and judged(None) == b""


def test_rails_forms_of_times_and_decimals() -> None:
    assert judge0_time(NOW) == "2024-04-17T23:28:19.123Z" and judge0_time(None) is None
    assert (decimal(5), decimal(0.0123), decimal(None)) == ("5.0", "0.012", None)


def test_judge0_request_rules_give_judge0s_messages() -> None:
    maxima = ResourceMaxima(**Limits(wall_time_s=20, cpu_time_s=15).model_dump())
    config = Judge0Config.of(LimitsDocument(max_resource_limits=maxima))
    errors: dict[str, list[str]] = {}
    bad = SubmissionIn(
        number_of_runs=2,
        cpu_time_limit=16,
        wall_time_limit=0.5,
        stack_limit=-1,
        enable_per_process_and_thread_time_limit=True,
        command_line_arguments="x" * 513,
    )
    check_rules(bad, config, errors)
    assert errors == {
        "number_of_runs": ["must be less than or equal to 1"],
        "cpu_time_limit": ["must be less than or equal to 15"],
        "wall_time_limit": ["must be greater than or equal to 1"],
        "stack_limit": ["must be greater than or equal to 0"],
        "enable_per_process_and_thread_time_limit": ["this option cannot be enabled"],
        "command_line_arguments": ["is too long (maximum is 512 characters)"],
    }


def request(*headers: tuple[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


def test_keys_as_each_peer_client_sends_them() -> None:
    basic = base64.b64encode(b"alice:cx_secret").decode()
    assert presented_key(request(("X-Auth-Token", "cx_a"))) == "cx_a"
    assert presented_key(request(("Authorization", "Bearer cx_b"))) == "cx_b"
    assert presented_key(request(("Authorization", "cx_c"))) == "cx_c"
    assert presented_key(request(("Authorization", f"Basic {basic}"))) == "cx_secret"
    user_only = base64.b64encode(b"cx_user:").decode()
    assert presented_key(request(("Authorization", f"Basic {user_only}"))) == "cx_user"
    assert presented_key(request()) is None


PYTHONS = [Language("python", v, ("py",)) for v in ("3.11.2", "3.12.1", "3.9.18")]


@pytest.mark.parametrize(
    ("wanted", "version"),
    [
        (None, "3.12.1"),
        ("*", "3.12.1"),
        ("3.11.x", "3.11.2"),
        ("<3.10", "3.9.18"),
        ("3.9.18", "3.9.18"),
    ],
)
def test_piston_chooses_the_newest_runtime_in_the_range(wanted: str | None, version: str) -> None:
    chosen = choose(PYTHONS, "py", wanted)
    assert chosen is not None and chosen.ours.version == version and chosen.language == "python"


def test_piston_unknown_languages_and_ranges_match_nothing() -> None:
    assert choose(PYTHONS, "python", "4.x") is None
    assert choose(PYTHONS, "python", "not a range") is None
    assert choose(PYTHONS, "ruby", "*") is None


def test_piston_request_defaults_and_limits() -> None:
    maxima = Limits(wall_time_s=60, cpu_time_s=30, memory_bytes=2**30)
    body = {
        "language": "py",
        "files": [{"content": "x"}],
        "stdin": "in",
        "run_timeout": 3000,
        "run_memory_limit": -1,
        "compile_cpu_time": 2000,
    }
    inputs = parse(body, maxima)
    assert inputs.stdin == b"in\n" and inputs.files == [(None, b"x")]
    assert inputs.run_limits.wall_time_s == 3.0 and inputs.run_limits.memory_bytes is None
    assert inputs.compile_limits.cpu_time_s == 2.0
    with pytest.raises(
        PistonRejected, match="compile_timeout cannot exceed the configured limit of 30000"
    ):
        parse({**body, "compile_timeout": 40000}, maxima)
    with pytest.raises(PistonRejected, match="run_cpu_time must be non-negative"):
        parse({**body, "run_cpu_time": -5}, maxima)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://100.64.0.1/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
    ],
)
async def test_non_public_callback_addresses_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(CallbackRefused, match="loopback or private"):
        await checked_address(url, allow_private=False)
    _, address = await checked_address(url, allow_private=True)
    assert address


async def test_public_callback_addresses_pass() -> None:
    parsed, address = await checked_address("https://93.184.216.34:8443/hook", allow_private=False)
    assert address == "93.184.216.34" and parsed.port == 8443
    with pytest.raises(CallbackRefused, match="http or https"):
        await checked_address("file:///etc/passwd", allow_private=True)


def test_judge0_messages_only_for_what_judge0_explains() -> None:
    wrong = {"expected_output": base64.b64encode(b"no").decode()}
    assert (
        Submission(view("succeeded", stdout=b"yes", message="exited with 0"), wrong).value(
            "message"
        )
        is None
    )
    assert Submission(view("runtime_error", message="exited with 3"), {}).value("message") == (
        "exited with 3"
    )
    slow = Submission(view("succeeded", cpu_time_s=1.5), {"cpu_time_limit": 1.0})
    assert "over the CPU time limit" in slow.value("message")
