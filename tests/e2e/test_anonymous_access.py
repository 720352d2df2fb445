"""E2E: anonymous access is served over loopback only, whatever address the server binds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import start_server, stop_server

pytestmark = pytest.mark.e2e
PROBE = """
import json, sys, httpx
url, key = sys.argv[1], sys.argv[2]
body = {"language": "fake", "source": "out hi"}
anonymous = httpx.post(url, json=body, timeout=20)
keyed = httpx.post(url, json=body, headers={"Authorization": "Bearer " + key}, timeout=20)
print(json.dumps([anonymous.status_code, anonymous.json(), keyed.status_code]))
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def other_host() -> Iterator[tuple[str, str]]:
    """A network namespace joined to this one by a veth pair: (namespace, our address there).
    A process in it is another host as far as the server can tell."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a network namespace")
    pid = os.getpid()
    namespace, outside, inside = f"cxanon{pid}", f"cxa{pid}h", f"cxa{pid}n"
    subnet = f"10.213.{pid % 250}"
    try:
        ip("netns", "add", namespace)
    except subprocess.CalledProcessError as error:
        pytest.skip(f"cannot make a network namespace here: {error.stderr.strip()}")
    try:
        ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", namespace)
        ip("addr", "add", f"{subnet}.1/30", "dev", outside)
        ip("link", "set", outside, "up")
        ip("-n", namespace, "addr", "add", f"{subnet}.2/30", "dev", inside)
        ip("-n", namespace, "link", "set", inside, "up")
        yield namespace, f"{subnet}.1"
    finally:
        subprocess.run(["ip", "link", "del", outside], capture_output=True)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def test_anonymous_access_is_refused_to_a_client_off_loopback_even_on_0_0_0_0(
    tmp_path: Path, other_host: tuple[str, str]
) -> None:
    # As reported: CODEEXEC_ALLOW_ANONYMOUS=1 and uvicorn --host 0.0.0.0 (CODEEXEC_HOST unset,
    # so the start-up check sees its loopback default).
    namespace, address = other_host
    server = start_server("fake", tmp_path, {"CODEEXEC_ALLOW_ANONYMOUS": "1"}, host="0.0.0.0")
    try:
        url = f"http://{address}:{server.url.rsplit(':', 1)[1]}/api/v1/executions"
        remote = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", PROBE, url, server.alice_key],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert remote.returncode == 0, remote.stderr
        anonymous_status, problem, keyed_status = json.loads(remote.stdout)
        local = httpx.post(
            f"{server.url}/api/v1/executions", json={"language": "fake", "source": "out hi"}
        )
    finally:
        stop_server(server)
    assert keyed_status == 202  # the other host reaches the server ...
    assert anonymous_status == 401  # ... but not anonymously
    assert problem["status"] == 401 and "only served over loopback" in problem["detail"]
    assert (local.status_code, local.json()["user_id"]) == (202, "anonymous")
