"""The language registry: the runtimes installed on this host, with versions, found once."""

from __future__ import annotations

import asyncio
import glob
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from codeexec.adapters.local_sandbox.recipes import RECIPE_BY_NAME, RECIPES, Toolchain
from codeexec.ports.sandbox import UnknownLanguage

_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)?)")
_PROBE_TIMEOUT_S = 10.0


def _search_dirs(search_path: str) -> list[str]:
    # Version-manager shims (pyenv) are scripts that pick a runtime at exec time; the box
    # runs real binaries only, so shims are skipped and the managed versions found directly.
    return [d for d in search_path.split(os.pathsep) if d and not d.rstrip("/").endswith("/shims")]


def _find(names: Sequence[str], dirs: Sequence[str]) -> list[str]:
    """Real paths of executables called `names` on `dirs`, in search order, de-duplicated."""
    found: list[str] = []
    for d in dirs:
        for name in names:
            candidate = os.path.join(d, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                real = os.path.realpath(candidate)
                if real not in found and not real.endswith("/rustup"):
                    found.append(real)
    return found


def _prefix_binds(*binaries: str) -> tuple[str, ...]:
    """Install prefixes outside /usr that must be bound for these binaries to work."""
    binds: list[str] = []
    for binary in binaries:
        if not binary.startswith("/usr/"):
            prefix = os.path.dirname(os.path.dirname(binary))
            if prefix not in binds and prefix != "/":
                binds.append(prefix)
    return tuple(binds)


async def _probe(*argv: str) -> str:
    """stdout+stderr of a short version query, or "" if it fails."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
    except OSError:
        return ""
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), _PROBE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return ""
    return out.decode("utf-8", "replace") if proc.returncode == 0 else ""


def _version_in(text: str) -> str | None:
    match = _VERSION.search(text)
    return match.group(1) if match else None


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


@dataclass(frozen=True)
class _Candidate:
    """A runtime found on disk, before its version is known."""

    recipe: str
    tools: Mapping[str, str]
    probe: tuple[str, ...] = ()
    """A command whose output holds the version (when no file says it)."""
    version: str | None = None
    binds: tuple[str, ...] = ()
    path: tuple[str, ...] = ()


def _interpreters(
    recipe: str, names: Sequence[str], dirs: Sequence[str], *version_argv: str
) -> list[_Candidate]:
    return [
        _Candidate(
            recipe, {"run": p}, (p, *version_argv), None, _prefix_binds(p), (os.path.dirname(p),)
        )
        for p in _find(names, dirs)
    ]


def _pythons(dirs: Sequence[str]) -> list[_Candidate]:
    names = ["python3"]
    for d in dirs:
        names += [
            n
            for n in sorted(os.listdir(d) if os.path.isdir(d) else [])
            if re.fullmatch(r"python3\.\d+", n) and n not in names
        ]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    pyenv_bins = sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.*", "bin")))
    found = _interpreters("python", names, [*dirs, *pyenv_bins], "--version")
    # The Debian-managed interpreter comes first: it is what `python3` means on a plain host.
    return sorted(found, key=lambda c: not c.tools["run"].startswith("/usr/bin/"))


def _gnu(recipe: str, compiler: str, dirs: Sequence[str]) -> list[_Candidate]:
    return [
        _Candidate(recipe, {"compile": p}, (p, "-dumpfullversion")) for p in _find([compiler], dirs)
    ]


def _javas(dirs: Sequence[str]) -> list[_Candidate]:
    homes = [os.path.dirname(os.path.dirname(p)) for p in _find(["javac"], dirs)]
    homes += [h for h in sorted(glob.glob("/usr/lib/jvm/*")) if not os.path.islink(h)]
    found = []
    for home in dict.fromkeys(homes):
        javac, java = os.path.join(home, "bin", "javac"), os.path.join(home, "bin", "java")
        match = re.search(
            r'^JAVA_VERSION="([^"]+)"', _read(os.path.join(home, "release")), re.MULTILINE
        )
        if match and os.access(javac, os.X_OK) and os.access(java, os.X_OK):
            found.append(
                _Candidate(
                    "java", {"compile": javac, "run": java}, (), match.group(1), _prefix_binds(java)
                )
            )
    return found


def _gos(dirs: Sequence[str]) -> list[_Candidate]:
    found = []
    for go in _find(["go"], dirs):
        version = _version_in(_read(os.path.join(os.path.dirname(os.path.dirname(go)), "VERSION")))
        if version:
            found.append(
                _Candidate(
                    "go", {"compile": go}, (), version, _prefix_binds(go), (os.path.dirname(go),)
                )
            )
    return found


def _rustcs(dirs: Sequence[str]) -> list[str]:
    # rustc on PATH is usually a rustup proxy: it is asked for its sysroot, whose real
    # rustc the box then runs.
    return [os.path.join(d, "rustc") for d in dirs if os.access(os.path.join(d, "rustc"), os.X_OK)]


def _rust_at(sysroot: str) -> _Candidate:
    sysroot = os.path.realpath(sysroot)
    rustc = os.path.join(sysroot, "bin", "rustc")
    binds = () if sysroot.startswith("/usr/") else (sysroot,)
    return _Candidate(
        "rust",
        {"compile": rustc},
        (rustc, "--version"),
        None,
        binds,
        (os.path.join(sysroot, "bin"),),
    )


async def _rusts(dirs: Sequence[str]) -> list[_Candidate]:
    sysroots = await asyncio.gather(*(_probe(p, "--print", "sysroot") for p in _rustcs(dirs)))
    return [_rust_at(s.strip()) for s in dict.fromkeys(sysroots) if s.strip()]


def _on_disk(dirs: Sequence[str]) -> list[_Candidate]:
    return [
        *_pythons(dirs),
        *_interpreters("javascript", ["node", "nodejs"], dirs, "--version"),
        *_interpreters("bash", ["bash"], dirs, "-c", "echo $BASH_VERSION"),
        *_gnu("c", "gcc", dirs),
        *_gnu("cpp", "g++", dirs),
        *_javas(dirs),
        *_gos(dirs),
        *_interpreters("ruby", ["ruby"], dirs, "--version"),
        *_interpreters("php", ["php"], dirs, "-r", "echo PHP_VERSION;"),
        *_interpreters("perl", ["perl"], dirs, "-e", "print substr($^V, 1)"),
    ]


async def _versioned(candidate: _Candidate) -> Toolchain | None:
    version = candidate.version or _version_in(await _probe(*candidate.probe))
    if version is None:
        return None
    return Toolchain(
        RECIPE_BY_NAME[candidate.recipe], version, candidate.tools, candidate.binds, candidate.path
    )


async def _detect(search_path: str) -> tuple[Toolchain, ...]:
    dirs = _search_dirs(search_path)
    candidates = _on_disk(dirs) + await _rusts(dirs)
    found = await asyncio.gather(*(_versioned(c) for c in candidates))
    order = [r.name for r in RECIPES]
    toolchains = sorted(
        (t for t in found if t is not None), key=lambda t: order.index(t.recipe.name)
    )
    unique: dict[tuple[str, str], Toolchain] = {}
    for tc in toolchains:
        unique.setdefault((tc.recipe.name, tc.version), tc)
    return tuple(unique.values())


_detected: dict[str, tuple[Toolchain, ...]] = {}
_in_flight: dict[tuple[str, asyncio.AbstractEventLoop], asyncio.Future[tuple[Toolchain, ...]]] = {}


async def detect_toolchains(search_path: str | None = None) -> tuple[Toolchain, ...]:
    """Every runtime found on `search_path` (default: $PATH), probed concurrently once and
    cached for the life of the process, so callers may ask as often as they like."""
    key = search_path if search_path is not None else os.environ.get("PATH", os.defpath)
    if key in _detected:
        return _detected[key]
    flight = (key, asyncio.get_running_loop())
    if flight not in _in_flight:
        _in_flight[flight] = asyncio.ensure_future(_detect(key))
    try:
        found = await asyncio.shield(_in_flight[flight])
    finally:
        if _in_flight.get(flight) is not None and _in_flight[flight].done():
            del _in_flight[flight]
    _detected[key] = found
    return found


def choose(toolchains: Sequence[Toolchain], language: str, version: str | None) -> Toolchain:
    """The toolchain for `language` (name or alias) at `version` (exact or a prefix such as
    "3.11"); without a version the first one found (the host's default)."""
    wanted = language.strip().lower()
    named = [t for t in toolchains if wanted == t.recipe.name or wanted in t.recipe.aliases]
    if not named:
        known = sorted({t.recipe.name for t in toolchains})
        raise UnknownLanguage(f"language {language!r} is not available here (have: {known})")
    if version is None:
        return named[0]
    for tc in named:
        if tc.version == version or tc.version.startswith(version.rstrip(".") + "."):
            return tc
    raise UnknownLanguage(
        f"{language} {version} is not available (have: {[t.version for t in named]})"
    )
