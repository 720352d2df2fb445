"""The Judge0 side of one submission: turn the request into our spec, with Judge0's extras
as its `judge0` annotation (recorded atomically with the request, so every API process sees
them and a crash cannot separate them from it), schedule its callback, and show it back as
Judge0 does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fastapi import Request
from pydantic import ValidationError

from codeexec.domain.model import RunSpec
from codeexec.ports.read_model import ExecutionView
from codeexec.runtime import Codeexec
from codeexec_server.compat.judge0.callbacks import CallbackRefused, CallbackSender, checked_address
from codeexec_server.compat.judge0.catalog import Judge0Config
from codeexec_server.compat.judge0.request import (
    Judge0Rejected,
    SubmissionIn,
    echo,
    limits_of,
    our_field,
    run_inputs,
)
from codeexec_server.compat.judge0.store import Judge0Store
from codeexec_server.compat.judge0.view import DEFAULT_FIELDS, Submission
from codeexec_server.compat.running import requested_spec, runtime_of, spec_of
from codeexec_server.keystore import Principal
from codeexec_server.problems import ApiProblem

ANNOTATION = "judge0"


@dataclass
class Prepared:
    spec: RunSpec

    @property
    def echo(self) -> dict[str, Any]:
        return extras(self.spec)


def extras(spec: RunSpec | None) -> dict[str, Any]:
    """Judge0's extras recorded with this spec; empty for executions made through our API."""
    found = spec.annotations.get(ANNOTATION) if spec is not None else None
    return found if isinstance(found, dict) else {}


@dataclass
class Judge0Service:
    store: Judge0Store
    callbacks: CallbackSender
    allow_private_callbacks: bool

    async def prepare(
        self, request: Request, principal: Principal, s: SubmissionIn, base64_encoded: bool
    ) -> Prepared:
        """Our spec for a Judge0 request, or Judge0Rejected with every error Judge0 gives."""
        config = Judge0Config.of(request.app.state.limits.document)
        inputs, errors = run_inputs(s, base64_encoded, runtime_of(request).language_list, config)
        if s.callback_url:
            try:
                await checked_address(s.callback_url, self.allow_private_callbacks)
            except CallbackRefused as error:
                errors.setdefault("callback_url", []).append(str(error))
        if errors or inputs.language is None:
            raise Judge0Rejected(errors)
        try:
            spec = spec_of(
                request,
                principal,
                language=inputs.language.name,
                version=inputs.language.version,
                files=[(inputs.source_file, inputs.source), *inputs.files],
                stdin=inputs.stdin,
                args=inputs.args,
                limits=limits_of(s, config),
            )
        except ApiProblem as problem:
            found: dict[str, list[str]] = {}
            for e in problem.errors:
                found.setdefault(our_field(e.field), []).append(e.message)
            raise Judge0Rejected(found or {"submission": [problem.detail]}) from None
        extra = {ANNOTATION: echo(s, config, inputs.expected_output)}
        try:
            return Prepared(spec.annotated(extra, inputs.compile_args))
        except ValidationError as error:  # a compiler option, or extras made too big
            options = [str(d["msg"]) for d in error.errors() if d["loc"][0] == "compile_args"]
            raise Judge0Rejected(
                {"compiler_options": options} if options else {"expected_output": ["is too long"]}
            ) from None

    def record(self, runtime: Codeexec, view: ExecutionView, e: dict[str, Any]) -> None:
        if e.get("callback_url"):
            self.store.add(view.id, e["callback_url"])
            self.callbacks.send_when_done(runtime, view.id, e["callback_url"])

    async def shown(
        self,
        runtime: Codeexec,
        view: ExecutionView,
        fields: tuple[str, ...],
        base64_encoded: bool,
        spec: RunSpec | None = None,
    ) -> dict[str, Any]:
        if spec is None:
            spec = await requested_spec(runtime, view)
        e = extras(spec) or self.store.legacy_echo(view.id)
        return Submission(view, e, spec).render(fields, base64_encoded)

    async def callback_body(self, runtime: Codeexec, token: UUID) -> dict[str, Any]:
        """What Judge0 PUTs: the default fields, base64-encoded."""
        return await self.shown(runtime, await runtime.find(token), DEFAULT_FIELDS, True)
