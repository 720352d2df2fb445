"""How each language is compiled and run inside the box: command lines built from a toolchain."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from codeexec.ports.sandbox import Language

BOX = "/box"
"""Where the run's files live inside the box (the private writable work dir)."""

BINARY = f"{BOX}/main"
"""Where compiled languages put the program they run."""


@dataclass(frozen=True)
class Job:
    """What one run asks of a toolchain: its files (first is the entry point) and arguments
    (the program's, or for a compile the compiler's extra options, after ours so they win)."""

    files: tuple[str, ...]
    args: tuple[str, ...] = ()
    memory_bytes: int = 256 * 2**20

    @property
    def entry(self) -> str:
        return self.files[0]

    def sources(self, *extensions: str) -> list[str]:
        """The submitted files with one of `extensions`, entry point first, as box paths."""
        picked = [f for f in self.files if f.endswith(extensions)]
        if self.entry not in picked:
            picked.insert(0, self.entry)
        return [posixpath.join(BOX, f) for f in picked]


Argv = list[str]
CommandBuilder = Callable[["Toolchain", Job], Argv]


@dataclass(frozen=True)
class Recipe:
    """The language-specific part: aliases, file extension, and the compile/run commands."""

    name: str
    aliases: tuple[str, ...]
    extension: str
    run: CommandBuilder
    compile: CommandBuilder | None = None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Toolchain:
    """A runtime found on this host: its version, real binary paths and what the box must bind."""

    recipe: Recipe
    version: str
    tools: Mapping[str, str]
    """Role -> real path of the binary (never a shim), e.g. {"run": "/usr/bin/python3.11"}."""
    binds: tuple[str, ...] = ()
    """Host directories outside /usr the runtime needs, bound read-only at the same path."""
    path: tuple[str, ...] = ()
    """Extra PATH entries inside the box."""

    @property
    def language(self) -> Language:
        return Language(
            name=self.recipe.name,
            version=self.version,
            aliases=self.recipe.aliases,
            compiled=self.recipe.compile is not None,
            extension=self.recipe.extension,
        )

    def compile_argv(self, job: Job) -> Argv | None:
        return None if self.recipe.compile is None else self.recipe.compile(self, job)

    def run_argv(self, job: Job) -> Argv:
        return self.recipe.run(self, job)


def _interpreted(tc: Toolchain, job: Job) -> Argv:
    return [tc.tools["run"], posixpath.join(BOX, job.entry), *job.args]


def _binary(tc: Toolchain, job: Job) -> Argv:
    return [BINARY, *job.args]


def _gcc(tc: Toolchain, job: Job) -> Argv:
    return [
        tc.tools["compile"],
        "-O2",
        "-pipe",
        "-fdiagnostics-color=never",
        "-o",
        BINARY,
        *job.args,
        *job.sources(".c"),
        "-lm",
    ]


def _gxx(tc: Toolchain, job: Job) -> Argv:
    return [
        tc.tools["compile"],
        "-O2",
        "-pipe",
        "-fdiagnostics-color=never",
        "-o",
        BINARY,
        *job.args,
        *job.sources(".cpp", ".cc", ".cxx"),
    ]


# The JVM sizes its heap from host RAM (it cannot see the run's cgroup), so tell it the limit;
# the serial collector and no perf-data file keep start-up and thread count small.
def _jvm_flags(job: Job, prefix: str = "") -> Argv:
    flags = [
        "-XX:+UseSerialGC",
        "-XX:-UsePerfData",
        "-Xshare:auto",
        f"-XX:MaxRAM={job.memory_bytes}",
        "-XX:MaxRAMPercentage=60",
    ]
    return [prefix + f for f in flags]


def _javac(tc: Toolchain, job: Job) -> Argv:
    return [
        tc.tools["compile"],
        *_jvm_flags(job, "-J"),
        "-J-XX:TieredStopAtLevel=1",
        "-encoding",
        "UTF-8",
        "-d",
        BOX,
        *job.args,
        *job.sources(".java"),
    ]


def _java(tc: Toolchain, job: Job) -> Argv:
    main_class = posixpath.splitext(job.entry)[0].replace("/", ".")
    return [tc.tools["run"], *_jvm_flags(job), "-cp", BOX, main_class, *job.args]


def _rustc(tc: Toolchain, job: Job) -> Argv:
    return [
        tc.tools["compile"],
        "--edition",
        "2021",
        "-C",
        "opt-level=2",
        "--color",
        "never",
        "-o",
        BINARY,
        *job.args,
        posixpath.join(BOX, job.entry),
    ]


def _go(tc: Toolchain, job: Job) -> Argv:
    return [tc.tools["compile"], "build", "-o", BINARY, *job.args, *job.sources(".go")]


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "python",
        ("py", "python3"),
        ".py",
        _interpreted,
        env={"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
    ),
    Recipe("javascript", ("js", "node", "nodejs"), ".js", _interpreted),
    Recipe("bash", ("sh",), ".sh", _interpreted),
    Recipe("c", (), ".c", _binary, compile=_gcc),
    Recipe("cpp", ("c++", "cxx"), ".cpp", _binary, compile=_gxx),
    Recipe("java", (), ".java", _java, compile=_javac),
    Recipe("rust", ("rs",), ".rs", _binary, compile=_rustc),
    Recipe(
        "go",
        ("golang",),
        ".go",
        _binary,
        compile=_go,
        env={
            "GOCACHE": "/tmp/.gocache",
            "GOPATH": "/tmp/.gopath",
            "GO111MODULE": "off",
            "CGO_ENABLED": "0",
            "GOTOOLCHAIN": "local",
        },
    ),
    Recipe("ruby", ("rb",), ".rb", _interpreted),
    Recipe("php", (), ".php", _interpreted),
    Recipe("perl", ("pl",), ".pl", _interpreted),
)

RECIPE_BY_NAME: Mapping[str, Recipe] = {r.name: r for r in RECIPES}
