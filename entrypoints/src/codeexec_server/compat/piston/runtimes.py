"""This host's runtimes under Piston's names, and Piston's way of choosing one: a language name
or alias, and a semver range for the version (`*`, `3.x`, `^3.10`, an exact version)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import semantic_version as semver

from codeexec.ports.sandbox import Language


@dataclass(frozen=True)
class PistonName:
    language: str
    runtime: str | None = None  # Piston names the runtime when it is not the language
    aliases: tuple[str, ...] = ()


# Piston's published package names for our languages; ours stay accepted as aliases.
NAMES = {
    "python": PistonName("python", None, ("py", "py3", "python3")),
    "javascript": PistonName("javascript", "node", ("node-javascript", "node-js", "js")),
    "bash": PistonName("bash", None, ("sh",)),
    "c": PistonName("c", "gcc", ("gcc",)),
    "cpp": PistonName("c++", "gcc", ("cpp", "g++")),
    "java": PistonName("java"),
    "rust": PistonName("rust", None, ("rs",)),
    "go": PistonName("go", None, ("golang",)),
    "ruby": PistonName("ruby", None, ("ruby3", "rb")),
    "php": PistonName("php"),
    "perl": PistonName("perl", None, ("pl",)),
}


@dataclass(frozen=True)
class PistonRuntime:
    ours: Language
    language: str
    runtime: str | None
    aliases: tuple[str, ...]

    @classmethod
    def of(cls, ours: Language) -> PistonRuntime:
        named = NAMES.get(ours.name, PistonName(ours.name))
        extra = tuple(a for a in (ours.name, *ours.aliases) if a != named.language)
        aliases = tuple(dict.fromkeys((*named.aliases, *extra)))
        return cls(ours, named.language, named.runtime, aliases)

    def listed(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "language": self.language,
            "version": self.ours.version,
            "aliases": list(self.aliases),
        }
        if self.runtime is not None:
            entry["runtime"] = self.runtime
        return entry

    def named(self, name: str) -> bool:
        return name == self.language or name in self.aliases


def runtimes(ours: Sequence[Language]) -> list[PistonRuntime]:
    return [PistonRuntime.of(lang) for lang in ours]


def _version(text: str) -> semver.Version | None:
    try:
        return semver.Version.coerce(text)
    except ValueError:
        return None


def choose(ours: Sequence[Language], language: str, version: str | None) -> PistonRuntime | None:
    """The newest runtime of `language` whose version satisfies `version` (absent: any)."""
    try:
        wanted = semver.NpmSpec(version if version not in (None, "") else "*")
    except ValueError:
        return None  # an invalid range matches nothing, as node-semver's satisfies says
    matching = []
    for rt in runtimes(ours):
        parsed = _version(rt.ours.version)
        if rt.named(language) and parsed is not None and wanted.match(parsed):
            matching.append((parsed, rt))
    return max(matching, key=lambda pair: pair[0])[1] if matching else None
