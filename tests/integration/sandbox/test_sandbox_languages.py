"""Every detected language runs correct programs and reports compile errors as such."""

from __future__ import annotations

import asyncio
import time

import pytest
from boxkit import run

from codeexec.adapters.local_sandbox import BubblewrapSandbox, detect_toolchains
from codeexec.adapters.local_sandbox.recipes import RECIPES
from codeexec.domain.model import SandboxStatus

pytestmark = pytest.mark.integration

# Each prints "hello <first argument>" and then echoes stdin back unchanged.
ECHO = {
    "python": "import sys\nprint('hello', sys.argv[1])\nsys.stdout.flush()\n"
    "sys.stdout.buffer.write(sys.stdin.buffer.read())\n",
    "javascript": "console.log('hello', process.argv[2]);\n"
    "process.stdout.write(require('fs').readFileSync(0));\n",
    "bash": 'echo "hello $1"\ncat\n',
    "c": "#include <stdio.h>\nint main(int argc, char **argv) {\n"
    '  printf("hello %s\\n", argv[1]);\n  int c;\n'
    "  while ((c = getchar()) != EOF) putchar(c);\n  return 0;\n}\n",
    "cpp": "#include <iostream>\nint main(int argc, char **argv) {\n"
    '  std::cout << "hello " << argv[1] << "\\n" << std::cin.rdbuf();\n}\n',
    "java": "public class Main {\n  public static void main(String[] a) throws Exception {\n"
    '    System.out.println("hello " + a[0]);\n'
    "    System.out.write(System.in.readAllBytes());\n    System.out.flush();\n  }\n}\n",
    "rust": "use std::io::{Read, Write};\nfn main() {\n"
    "    let args: Vec<String> = std::env::args().collect();\n"
    '    println!("hello {}", args[1]);\n    let mut input = Vec::new();\n'
    "    std::io::stdin().read_to_end(&mut input).unwrap();\n"
    "    std::io::stdout().write_all(&input).unwrap();\n}\n",
    "go": 'package main\n\nimport (\n\t"fmt"\n\t"io"\n\t"os"\n)\n\nfunc main() {\n'
    '\tfmt.Println("hello", os.Args[1])\n\tio.Copy(os.Stdout, os.Stdin)\n}\n',
    "ruby": 'puts "hello #{ARGV[0]}"\n$stdout.write($stdin.read)\n',
    "php": '<?php\necho "hello " . $argv[1] . "\\n";\necho stream_get_contents(STDIN);\n',
    "perl": 'print "hello $ARGV[0]\\n";\nprint while <STDIN>;\n',
}

BROKEN = {
    "c": ("int main( {\n", b"error"),
    "cpp": ("int main() { undeclared(); }\n", b"undeclared"),
    "java": ('public class Main { void f() { int x = "s"; } }\n', b"incompatible types"),
    "rust": ('fn main() { let x: i32 = "s"; }\n', b"mismatched types"),
    "go": ("package main\n\nfunc main() {\n\tx := 1\n}\n", b"declared but not used"),
}

ALL = [r.name for r in RECIPES]


@pytest.fixture
async def installed() -> set[str]:
    return {tc.recipe.name for tc in await detect_toolchains()}


def test_every_required_language_has_a_recipe() -> None:
    assert {"python", "javascript", "bash", "c", "cpp", "java", "rust"} <= set(ALL)
    assert set(ECHO) == set(ALL)


async def test_detection_is_cached() -> None:
    await detect_toolchains()
    started = time.perf_counter()
    await detect_toolchains()
    assert time.perf_counter() - started < 0.01


async def test_languages_report_versions(sandbox: BubblewrapSandbox) -> None:
    languages = await sandbox.languages()
    names = {lang.name for lang in languages}
    assert "python" in names and "bash" in names
    for lang in languages:
        assert lang.version[0].isdigit(), lang
        assert lang.compiled == (lang.name in BROKEN)


@pytest.mark.parametrize("language", ALL)
async def test_program_echoes_arguments_and_stdin(
    sandbox: BubblewrapSandbox, installed: set[str], language: str
) -> None:
    if language not in installed:
        pytest.skip(f"{language} is not installed on this host")
    stdin = "héllo wörld ✓\nline two\n".encode()
    result = await run(
        sandbox,
        language,
        ECHO[language],
        name="Main.java" if language == "java" else None,
        args=("wörld", "ignored"),
        stdin=stdin,
    )
    assert result.status is SandboxStatus.SUCCEEDED, (
        result.message,
        result.stderr,
        result.compile_output,
    )
    assert result.stdout == "hello wörld\n".encode() + stdin
    assert result.exit_code == 0 and result.stderr == b""
    assert (result.compile_output is not None) == (language in BROKEN)


@pytest.mark.parametrize("language", sorted(BROKEN))
async def test_compile_error_is_reported_with_the_compiler_output(
    sandbox: BubblewrapSandbox, installed: set[str], language: str
) -> None:
    if language not in installed:
        pytest.skip(f"{language} is not installed on this host")
    code, expected = BROKEN[language]
    result = await run(sandbox, language, code, name="Main.java" if language == "java" else None)
    assert result.status is SandboxStatus.COMPILATION_ERROR
    assert result.compile_output is not None and expected in result.compile_output
    assert result.stdout == b"" and result.exit_code is None


async def test_compile_stage_has_its_own_limits(
    sandbox: BubblewrapSandbox, installed: set[str]
) -> None:
    if "c" not in installed:
        pytest.skip("no C compiler")
    from codeexec.domain.model import Limits

    result = await run(
        sandbox, "c", ECHO["c"], args=("x",), compile_limits=Limits(wall_time_s=0.001)
    )
    assert result.status is SandboxStatus.COMPILATION_ERROR
    assert "wall time" in result.message


async def test_multiple_files_with_the_first_as_entry_point(sandbox: BubblewrapSandbox) -> None:
    from codeexec.domain.model import SourceFile

    result = await run(
        sandbox,
        "python",
        "from pkg.helper import greet\nprint(greet())\n",
        extra=(
            SourceFile(name="pkg/helper.py", content=b"def greet():\n    return 'from helper'\n"),
        ),
    )
    assert result.stdout == b"from helper\n"


async def test_multiple_c_files_are_compiled_together(
    sandbox: BubblewrapSandbox, installed: set[str]
) -> None:
    if "c" not in installed:
        pytest.skip("no C compiler")
    from codeexec.domain.model import SourceFile

    result = await run(
        sandbox,
        "c",
        "int twice(int);\n#include <stdio.h>\n"
        'int main(void) { printf("%d\\n", twice(21)); return 0; }\n',
        extra=(SourceFile(name="twice.c", content=b"int twice(int x) { return 2 * x; }\n"),),
    )
    assert result.stdout == b"42\n", result.compile_output


async def test_a_specific_version_can_be_chosen(sandbox: BubblewrapSandbox) -> None:
    pythons = [lang for lang in await sandbox.languages() if lang.name == "python"]
    chosen = pythons[-1]
    major_minor = ".".join(chosen.version.split(".")[:2])
    result = await run(
        sandbox,
        "python",
        "import sys\nprint('%d.%d.%d' % sys.version_info[:3])\n",
        version=major_minor,
    )
    assert result.stdout.decode().strip().startswith(major_minor)


async def test_languages_run_concurrently(sandbox: BubblewrapSandbox) -> None:
    results = await asyncio.gather(*(run(sandbox, "python", f"print({i} * {i})") for i in range(8)))
    assert [r.stdout for r in results] == [f"{i * i}\n".encode() for i in range(8)]
