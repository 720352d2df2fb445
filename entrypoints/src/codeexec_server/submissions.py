"""Turn an API submission into a RunSpec, checking it against the admin-set maxima."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from pydantic import ValidationError

from codeexec.domain.model import Limits, RunSpec, SourceFile
from codeexec.ports.sandbox import Language
from codeexec_server.keystore import Principal
from codeexec_server.limits import LimitsDocument
from codeexec_server.problems import ApiProblem
from codeexec_server.schemas import FieldError, SubmissionIn


def _decode(text: str, encoding: str, field: str, errors: list[FieldError]) -> bytes:
    if encoding == "base64":
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            errors.append(FieldError(field=field, message="not valid base64"))
            return b""
    return text.encode("utf-8", "surrogatepass")


def find_language(languages: Sequence[Language], name: str) -> Language | None:
    return next((lang for lang in languages if name == lang.name or name in lang.aliases), None)


def default_file_name(language: Language | None) -> str:
    extension = language.extension if language else ""
    if extension and not extension.startswith("."):
        extension = "." + extension
    return "main" + extension


def build_spec(
    body: SubmissionIn,
    principal: Principal,
    languages: Sequence[Language],
    policy: LimitsDocument,
) -> tuple[RunSpec, int]:
    """The RunSpec and priority, or an ApiProblem naming every offending field."""
    errors: list[FieldError] = []
    language = find_language(languages, body.language)
    if language is None:
        names = ", ".join(sorted(lang.name for lang in languages))
        errors.append(FieldError(field="language", message=f"unknown language; available: {names}"))
    files: list[tuple[str, bytes]] = []
    if body.source is not None:
        files.append((default_file_name(language), body.source.encode("utf-8", "surrogatepass")))
    for i, file in enumerate(body.files or ()):
        files.append(
            (file.name, _decode(file.content, file.encoding, f"files.{i}.content", errors))
        )
    stdin = _decode(body.stdin, body.stdin_encoding, "stdin", errors)
    limits = _limits(body, policy.max_resource_limits, errors)
    priority = body.priority or 0
    if body.priority is not None and not (principal.is_admin or policy.allow_user_priority):
        errors.append(FieldError(field="priority", message="only admins may set a priority"))
    if errors:
        raise ApiProblem(422, "; ".join(f"{e.field}: {e.message}" for e in errors), errors)
    try:
        spec = RunSpec(
            language=body.language,
            version=body.version,
            files=tuple(SourceFile(name=n, content=c) for n, c in files),
            stdin=stdin,
            args=tuple(body.args),
            limits=limits,
        )
    except ValidationError as error:
        found = [
            FieldError(
                field=".".join(str(p) for p in e["loc"]) or "body",
                message=e["msg"].removeprefix("Value error, "),
            )
            for e in error.errors()
        ]
        raise ApiProblem(422, "; ".join(f"{e.field}: {e.message}" for e in found), found) from None
    return spec, priority


def _limits(body: SubmissionIn, maxima: Limits, errors: list[FieldError]) -> Limits:
    requested = body.limits.model_dump(exclude_none=True) if body.limits else {}
    defaults = Limits().model_dump()
    merged = {}
    for name, default in defaults.items():
        ceiling = getattr(maxima, name)
        if name in requested:
            if requested[name] > ceiling:
                errors.append(
                    FieldError(field=f"limits.{name}", message=f"must be at most {ceiling}")
                )
            merged[name] = requested[name]
        else:
            merged[name] = min(default, ceiling)
    try:
        return Limits(**merged)
    except ValidationError as error:
        for e in error.errors():
            field = "limits." + ".".join(str(p) for p in e["loc"])
            errors.append(FieldError(field=field, message=e["msg"]))
        return Limits()
