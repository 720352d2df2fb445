"""nox sessions: lint, typecheck, tests (unit, integration, e2e) and benchmarks.

They run in the environment `scripts/install.sh --test` prepared (./.venv), so CI and a
developer run the very same tools; `nox -s tests` is what CI runs."""

from __future__ import annotations

import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = [
    "lint",
    "typecheck",
    "unit",
    "integration",
    "e2e",
    "deploy",
    "kafka",
    "mongo",
    "kubernetes",
]

PYTEST_NO_TESTS = 5
PY = sys.executable  # the interpreter nox runs on: the project's .venv


def pytest(session: nox.Session, *args: str) -> None:
    # pytest exits 5 when a selection has no tests; that is not a failure of the suite.
    session.run(PY, "-m", "pytest", *args, *session.posargs, success_codes=[0, PYTEST_NO_TESTS])


@nox.session
def lint(session: nox.Session) -> None:
    session.run(PY, "-m", "ruff", "check", ".")
    session.run(PY, "-m", "ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy strict on the core, the entrypoints, every adapter distribution and their tests
    (tests/e2e drives the entrypoints, tests/system starts them as processes, tests/deploy
    checks the Kubernetes manifests)."""
    adapters = sorted(str(p) for p in Path("adapters").glob("*/src"))
    adapter_tests = sorted(str(p) for p in Path("adapters").glob("*/tests"))
    checked = [*adapters, *adapter_tests, "tests/e2e", "tests/system", "tests/deploy"]
    session.run(PY, "-m", "mypy", "src", "entrypoints/src", *checked)


@nox.session
def unit(session: nox.Session) -> None:
    pytest(session, "tests/unit", "-q")


@nox.session
def integration(session: nox.Session) -> None:
    pytest(session, "tests/integration", "-q")


@nox.session
def e2e(session: nox.Session) -> None:
    pytest(session, "tests/e2e", "-q")


@nox.session
def deploy(session: nox.Session) -> None:
    """deploy/kubernetes rendered by kubectl, against the Kubernetes schemas and the
    restricted Pod Security Standard, and each Deployment run as its manifest says."""
    pytest(session, "tests/deploy", "-q")


@nox.session
def system(session: nox.Session) -> None:
    """Every role in its own process on tansu and PostgreSQL, killed and restarted."""
    pytest(session, "tests/system", "-q")


@nox.session
def kafka(session: nox.Session) -> None:
    """The Kafka adapter against a tansu broker the tests start."""
    pytest(session, "adapters/kafka/tests", "-q")


@nox.session
def mongo(session: nox.Session) -> None:
    """The Mongo adapter against an nx-27017 wire-protocol server the tests start."""
    pytest(session, "adapters/mongo/tests", "-q")


@nox.session
def kubernetes(session: nox.Session) -> None:
    """The Kubernetes sandbox through the real client against a fake API server the tests
    start (its kubelet runs the in-pod launcher as a local process)."""
    pytest(session, "adapters/kubernetes/tests", "-q")


@nox.session
def tests(session: nox.Session) -> None:
    """Everything CI checks, in one session."""
    lint(session)
    typecheck(session)
    adapter_tests = ("adapters/kafka/tests", "adapters/mongo/tests", "adapters/kubernetes/tests")
    pytest(session, "tests", *adapter_tests, "-q", "-p", "no:cacheprovider")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; each figure is printed as `bench: NAME VALUE UNIT`."""
    session.run(PY, "bench/core_bench.py")
    for script in (
        "bench/sandbox_bench.py",
        "bench/sandbox_profile.py",
        "bench/http_bench.py",
        "bench/compat_bench.py",
        "bench/replay_bench.py",
        "bench/storage_bench.py",
        "bench/sse_memory_bench.py",
        "bench/shared_store_bench.py",
        "bench/kafka_bench.py",
        "bench/kafka_lag_bench.py",
        "bench/mongo_store_bench.py",
        "bench/key_store_bench.py",
        "bench/coordinator_bench.py",
        "bench/role_startup_bench.py",
        "bench/console_bench.py",
        "bench/kubernetes_bench.py",
    ):
        if Path(script).exists():
            session.run(PY, script)
    # The API and every role in processes of their own on Kafka and PostgreSQL, beside
    # `codeexec serve`, in one run.
    session.run(PY, "bench/distributed_bench.py")
    # The platform alone: the same HTTP figures with the fake sandbox (no code runs).
    session.run(PY, "bench/http_bench.py", "--sandbox", "fake")
    # The HTTP figures with the bare interpreter, on the distributed setup.
    session.run(PY, "bench/http_bench.py", "--setup", "distributed")
