"""What a submission may ask for: rules the domain and the runtime check before recording,
so a user's mistake is refused naming its field instead of ending as an internal error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from codeexec.domain.events import ExecutionRequested, from_json, to_json
from codeexec.domain.model import MAX_ARG_BYTES, MAX_ARGV_BYTES, RunSpec, SourceFile
from codeexec.ports.sandbox import Language, UnknownVersion
from tests.unit.factories import runtime, script
from tests.unit.test_events import sample


def spec(*names: str, args: tuple[str, ...] = ()) -> RunSpec:
    files = tuple(SourceFile(name=n, content=b"out hi") for n in names or ("main",))
    return RunSpec(language="fake", files=files, args=args)


def refusal(*names: str, args: tuple[str, ...] = ()) -> tuple[tuple[str | int, ...], str]:
    with pytest.raises(ValidationError) as caught:
        spec(*names, args=args)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["loc"], errors[0]["msg"]


def test_an_argument_holding_nul_is_refused_naming_it() -> None:
    loc, message = refusal(args=("fine", "a\0b"))
    assert loc == ("args", 1)
    assert "NUL" in message


def test_an_argument_over_the_kernels_bound_is_refused_and_one_at_it_is_not() -> None:
    assert spec(args=("x" * (MAX_ARG_BYTES - 1),))  # plus its NUL: exactly the bound
    loc, message = refusal(args=("x" * MAX_ARG_BYTES,))
    assert loc == ("args", 0)
    assert str(MAX_ARG_BYTES - 1) in message
    # The bound is in bytes as execve counts them, not characters.
    assert refusal(args=("é" * (MAX_ARG_BYTES // 2),))[0] == ("args", 0)


def test_args_and_file_names_together_are_bounded() -> None:
    many = ("x" * 100_000,) * (MAX_ARGV_BYTES // 100_000 + 1)
    loc, message = refusal(args=many)
    assert loc == ("args",)
    assert str(MAX_ARGV_BYTES) in message


@pytest.mark.parametrize(
    ("names", "field"),
    [
        (("main.py", "main.py/x"), ("files", 1, "name")),
        (("x/y", "x"), ("files", 1, "name")),
        (("lib/a/b.py", "main.py", "lib/a"), ("files", 2, "name")),
        (("a.c", "a.c"), ("files", 1, "name")),
    ],
)
def test_a_file_that_is_another_files_directory_is_refused_naming_it(
    names: tuple[str, ...], field: tuple[str | int, ...]
) -> None:
    assert refusal(*names)[0] == field


def test_sibling_files_in_one_directory_are_fine() -> None:
    assert spec("lib/a.py", "lib/b.py", "lib/sub/c.py", "main.py")


def test_recorded_requests_load_even_if_todays_rules_refuse_them() -> None:
    # Runs accepted before a rule existed are facts in the log: the store and the bus must
    # still load them (they ended as they ended), while new submissions are refused.
    document = json.loads(to_json(sample("ExecutionRequested")))
    document["spec"]["args"] = ["a\0b", "x" * MAX_ARG_BYTES]
    document["spec"]["files"] = [
        {"name": "x/y", "content": ""},
        {"name": "x", "content": ""},
    ]
    loaded = from_json(json.dumps(document))
    assert isinstance(loaded, ExecutionRequested)
    assert loaded.spec.args[0] == "a\0b"
    assert [f.name for f in loaded.spec.files] == ["x/y", "x"]
    with pytest.raises(ValidationError):
        RunSpec.model_validate(document["spec"])


def test_a_version_matches_exactly_or_as_a_prefix_at_a_dot() -> None:
    python = Language("python", "3.11.2")
    assert python.offers("3.11.2") and python.offers("3.11") and python.offers("3")
    assert not python.offers("3.1") and not python.offers("3.11.20") and not python.offers("")


async def test_a_version_the_language_lacks_is_refused_before_anything_is_recorded(
    tmp_path: Path,
) -> None:
    async with runtime(data_dir=tmp_path) as cx:
        before = cx.store.max_position() if cx.store else 0
        wrong = RunSpec(language="fake", version="9.9", files=script("out hi").files)
        with pytest.raises(UnknownVersion, match=r"have: 1\.0"):
            await cx.submit("alice", wrong)
        assert cx.store is not None and cx.store.max_position() == before
        right = wrong.model_copy(update={"version": "1"})
        done = await cx.wait((await cx.submit("alice", right)).id, timeout=5)
        assert done.status == "succeeded"
