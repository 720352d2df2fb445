"""Compiler options: checked as program arguments are, and placed by every compiled
language's recipe after our own options (so they win) and before the sources."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codeexec.adapters.local_sandbox.recipes import RECIPES, Job, Recipe, Toolchain
from codeexec.domain.model import MAX_ARG_BYTES, MAX_ARGV_BYTES, RunSpec, request_digest

BASE = {"language": "c", "files": [{"name": "main.c", "content": "eA=="}]}


@pytest.mark.parametrize(
    ("compile_args", "message"),
    [
        (["-DX=\0"], "NUL"),
        (["x" * MAX_ARG_BYTES], f"at most {MAX_ARG_BYTES - 1} bytes"),
        (["x" * 100_000] * (MAX_ARGV_BYTES // 100_000 + 1), "compile_args"),
    ],
)
def test_bad_compile_args_are_refused(compile_args: list[str], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RunSpec.model_validate({**BASE, "compile_args": compile_args})
    error = caught.value.errors()[0]
    assert error["loc"][0] in ("compile_args", "args") and message in error["msg"]


def test_compile_args_are_part_of_the_request_and_default_to_none() -> None:
    plain = RunSpec.model_validate(BASE)
    optioned = RunSpec.model_validate({**BASE, "compile_args": ["-DANSWER=42"]})
    assert plain.compile_args == () and optioned.compile_args == ("-DANSWER=42",)
    assert request_digest(plain, 0) != request_digest(optioned, 0)
    assert '"compile_args"' not in plain.model_dump_json(exclude_defaults=True)


COMPILED = [r for r in RECIPES if r.compile is not None]


@pytest.mark.parametrize("recipe", COMPILED, ids=[r.name for r in COMPILED])
def test_each_compiled_language_passes_them_before_its_sources(recipe: Recipe) -> None:
    tc = Toolchain(recipe, "1", {"compile": "/usr/bin/cc", "run": "/usr/bin/run"})
    files = ("main" + tc.recipe.extension,)
    plain = tc.compile_argv(Job(files))
    argv = tc.compile_argv(Job(files, ("-DANSWER=42", "-O0")))
    assert plain is not None and argv is not None
    at = argv.index("-DANSWER=42")
    assert argv[at + 1] == "-O0"
    assert argv[:at] + argv[at + 2 :] == plain
    assert "/box/" + files[0] in argv[at + 2 :]  # the sources come after them
