"""The image catalog: which container image runs each language, and its compile and run commands.

Commands are argv lists (never a shell line): `{main}` is the first submitted file, `{files}`
expands to every submitted file; the run's own arguments (and the compiler's extra options)
are appended. Every image needs a Python 3 (`launcher`) for the in-pod launcher."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codeexec.ports.sandbox import Language


class CatalogError(ValueError):
    """The catalog setting cannot be used; the message names the variable and the entry."""


@dataclass(frozen=True)
class LanguageImage:
    name: str
    image: str
    version: str
    run: tuple[str, ...]
    compile: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    extension: str = ""
    launcher: str = "python3"

    @property
    def language(self) -> Language:
        return Language(
            self.name,
            self.version,
            aliases=self.aliases,
            compiled=self.compile is not None,
            extension=self.extension,
        )

    def run_argv(self, files: Sequence[str], args: Sequence[str]) -> list[str]:
        return [*_expand(self.run, files), *args]

    def compile_argv(self, files: Sequence[str], args: Sequence[str]) -> list[str] | None:
        if self.compile is None:
            return None
        return [*_expand(self.compile, files), *args]


def _expand(template: Sequence[str], files: Sequence[str]) -> list[str]:
    argv: list[str] = []
    for part in template:
        if part == "{files}":
            argv.extend(files)
        else:
            argv.append(part.replace("{main}", files[0]))
    return argv


DEFAULT_CATALOG: tuple[LanguageImage, ...] = (
    LanguageImage(
        "python",
        "python:3.11-slim",
        "3.11",
        run=("python3", "-u", "{main}"),
        aliases=("py", "python3"),
        extension=".py",
    ),
    LanguageImage(
        "bash", "python:3.11-slim", "5.2", run=("bash", "{main}"), aliases=("sh",), extension=".sh"
    ),
)

VARIABLE = "CODEEXEC_K8S_IMAGES"
FIELDS = {"image", "version", "run", "compile", "aliases", "extension", "launcher"}


def parse_catalog(text: str) -> tuple[LanguageImage, ...]:
    """CODEEXEC_K8S_IMAGES: a JSON object, language name -> {image, version, run, compile?,
    aliases?, extension?, launcher?}; it replaces the default catalog."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise CatalogError(f"{VARIABLE} must be a JSON object: {error}") from None
    if not isinstance(raw, dict) or not raw:
        raise CatalogError(f"{VARIABLE} must be a non-empty JSON object of languages")
    return tuple(_entry(name, value) for name, value in raw.items())


def _entry(name: str, value: Any) -> LanguageImage:
    where = f"{VARIABLE}[{name!r}]"
    if not isinstance(value, dict):
        raise CatalogError(f"{where} must be an object")
    unknown = set(value) - FIELDS
    if unknown:
        raise CatalogError(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
    for key in ("image", "version"):
        if not isinstance(value.get(key), str) or not value[key]:
            raise CatalogError(f"{where}.{key} must be a non-empty string")
    return LanguageImage(
        name=name,
        image=value["image"],
        version=value["version"],
        run=_argv(f"{where}.run", value.get("run")),
        compile=_optional_argv(f"{where}.compile", value.get("compile")),
        aliases=_strings(f"{where}.aliases", value.get("aliases", [])),
        extension=_string(f"{where}.extension", value.get("extension", "")),
        launcher=_string(f"{where}.launcher", value.get("launcher", "python3")) or "python3",
    )


def _argv(where: str, value: Any) -> tuple[str, ...]:
    argv = _strings(where, value)
    if not argv:
        raise CatalogError(f"{where} must be a non-empty list of strings (an argv, no shell)")
    return argv


def _optional_argv(where: str, value: Any) -> tuple[str, ...] | None:
    return None if value is None else _argv(where, value)


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(f"{where} must be a list of strings")
    return tuple(value)


def _string(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise CatalogError(f"{where} must be a string")
    return value


def find(catalog: Sequence[LanguageImage], name: str) -> LanguageImage | None:
    return next((e for e in catalog if e.language.named(name)), None)
