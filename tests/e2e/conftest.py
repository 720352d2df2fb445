"""E2E fixtures: a real `uvicorn` process per sandbox kind, on a free port, with a temp data dir."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from codeexec_server.keystore import KeyStore

from tests.e2e.uvicorn_app import start_app


def local_sandbox_missing() -> str | None:
    """Why the real local sandbox cannot be used here, or None when it can."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed: apt-get install -y bubblewrap"
    try:
        from codeexec.adapters.local_sandbox import BubblewrapSandbox  # noqa: F401
    except ImportError as error:
        return f"codeexec.adapters.local_sandbox does not import: {error}"
    return None


@dataclass(frozen=True)
class Programs:
    """The same behaviours written for each sandbox's language."""

    language: str
    hello: str  # prints "hello" and exits 0
    exit3: str  # prints "partial" and exits 3
    slow: str  # prints "start", then runs until stopped
    chunks: str  # prints "a", waits half a second, prints "b"


PYTHON = Programs(
    "python",
    'print("hello")',
    'print("partial")\nimport sys\nsys.exit(3)',
    'import time\nprint("start", flush=True)\ntime.sleep(60)',
    'import time\nprint("a", flush=True)\ntime.sleep(0.5)\nprint("b")',
)
PROGRAMS = {
    "fake": Programs(
        "fake", "out hello", "out partial\nexit 3", "out start\nhang", "out a\nsleep 0.5\nout b"
    ),
    "local": PYTHON,
    "kubernetes": PYTHON,
}


@dataclass
class Server:
    url: str
    kind: str
    data_dir: Path
    admin_key: str
    alice_key: str
    bob_key: str
    process: subprocess.Popen[bytes]
    programs: Programs = field(init=False)

    def __post_init__(self) -> None:
        self.programs = PROGRAMS[self.kind]

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=70)

    def new_user_key(self, user: str) -> str:
        store = KeyStore.in_data_dir(self.data_dir)
        try:
            return store.create(user)
        finally:
            store.close()


def start_server(
    kind: str, data_dir: Path, extra_env: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> Server:
    store = KeyStore.in_data_dir(data_dir)
    keys = store.create("root", "admin"), store.create("alice"), store.create("bob")
    store.close()
    env = {"CODEEXEC_HEARTBEAT_S": "0.5", **(extra_env or {})}
    log = data_dir / "server.log"
    try:
        with log.open("wb") as output:
            process, url = start_app(data_dir, kind, env=env, host=host, output=output)
    except RuntimeError as failure:
        raise RuntimeError(f"{failure}:\n{log.read_text()}") from failure
    return Server(url, kind, data_dir, *keys, process)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session", params=["fake", "local"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    kind = request.param
    if kind == "local" and (reason := local_sandbox_missing()):
        pytest.skip(f"real local sandbox unavailable: {reason}")
    running = start_server(kind, tmp_path_factory.mktemp(f"data-{kind}"))
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A fake-sandbox server for tests about the API surface rather than running code."""
    running = start_server("fake", tmp_path_factory.mktemp("data-fake-surface"))
    yield running
    stop_server(running)


# The browser fixture, for every page's tests (the console's and the dashboard's).
from tests.e2e.browser_fixtures import browser  # noqa: E402, F401
