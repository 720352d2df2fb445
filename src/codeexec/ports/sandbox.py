"""The sandbox port: start untrusted code, stream its output, stop it, collect its result."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from codeexec.domain.model import RunResult, RunSpec, Stream


class SandboxError(Exception):
    """The sandbox could not do what was asked (not a failure of the user's code)."""


class SandboxAlreadyStarted(SandboxError):
    """A sandbox with this id was already started: user code never runs twice."""


class SandboxUnavailable(SandboxError):
    """The sandbox cannot run code on this host (for example bubblewrap is missing)."""


class UnknownLanguage(SandboxError):
    """The requested language (or version) is not available."""


class UnknownVersion(UnknownLanguage):
    """The language is available, but not at the requested version."""


@dataclass(frozen=True)
class OutputChunk:
    """A piece of live output; `stage` is "compile" or "run"."""

    stream: Stream
    data: bytes
    stage: str = "run"


@dataclass(frozen=True)
class Language:
    """A runtime the sandbox can run, as detected on the host."""

    name: str
    version: str
    aliases: tuple[str, ...] = ()
    compiled: bool = False
    extension: str = ""

    def named(self, name: str) -> bool:
        return name == self.name or name in self.aliases

    def offers(self, version: str) -> bool:
        """`version` is this one, or a prefix of it ending at a dot ("3.11" of "3.11.2")."""
        return self.version == version or self.version.startswith(version.rstrip(".") + ".")


class SandboxRun(ABC):
    """One running sandbox. `output()` yields chunks live; `result()` waits for the end."""

    sandbox_id: str

    @abstractmethod
    def output(self) -> AsyncIterator[OutputChunk]:
        """Live output chunks in the order produced; ends when the run ends."""

    @abstractmethod
    async def result(self) -> RunResult:
        """Wait for the run to end and return its bytes-exact result."""


class Sandbox(ABC):
    """Runs untrusted code in isolation, with limits enforced from outside the process."""

    runs_survive_restart: bool = False
    """False when runs die with the worker process (local sandboxes): after a restart the
    worker reports its unfinished runs as lost instead of waiting for their deadline."""

    @abstractmethod
    async def start(self, sandbox_id: str, spec: RunSpec) -> SandboxRun:
        """Start a run. Raises SandboxAlreadyStarted if `sandbox_id` was ever started,
        UnknownLanguage for an unavailable language, SandboxUnavailable if it cannot run."""

    @abstractmethod
    async def stop(self, sandbox_id: str) -> bool:
        """Kill the run's whole process tree; its result becomes `cancelled`.
        Returns False if no such run is active. Idempotent."""

    @abstractmethod
    async def languages(self) -> Sequence[Language]:
        """The languages this sandbox can run, with versions. Only looks: every process
        asks (the API checks submissions against it); nothing is claimed or started."""

    async def prepare(self) -> None:
        """Get ready to run code, so that the first run does not pay for it (claim user
        ids, build what boxes share, start helpers). Called where runs start (the worker
        role); a process that never runs code never calls it. Raises SandboxUnavailable
        if this host cannot run code."""

    def enforced_limits(self) -> Mapping[str, str]:
        """Which limits are enforced and how (for example memory: "cgroup v1")."""
        return {}

    async def close(self) -> None:
        """Stop every active run and release resources."""
