"""Through the API into a pod: a submission as large as the API accepts (a 4 MiB request)
runs bytes-exact on the Kubernetes sandbox, its payload spread over ConfigMaps, and nothing
is left on the cluster after it. The cluster is the adapter's fake API server in a process
of its own, whose kubelet runs each pod's launcher as a local process."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator

import pytest
from codeexec_server.settings import ServerSettings

from tests.e2e.conftest import Server, start_server, stop_server
from tests.system.fake_kubernetes import FakeKubernetes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def on_kubernetes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, FakeKubernetes]]:
    root = tmp_path_factory.mktemp("kubernetes-large")
    with FakeKubernetes(root / "kubernetes") as fake:
        data = root / "data"
        data.mkdir()
        running = start_server("kubernetes", data, extra_env=fake.env())
        try:
            yield running, fake
        finally:
            stop_server(running)


def assert_nothing_left(fake: FakeKubernetes) -> None:
    deadline = time.monotonic() + 10
    while fake.objects() != {"pods": [], "configmaps": []}:
        assert time.monotonic() < deadline, fake.objects()
        time.sleep(0.1)


def program_of(size: int) -> str:
    """Python source of `size` UTF-8 bytes that prints its own digest and length."""
    head = (
        "import hashlib\n"
        "data = open(__file__, 'rb').read()\n"
        "print(hashlib.sha256(data).hexdigest(), len(data))\n"
    )
    line = "# " + "café ✓ " * 12 + "\n"
    body = line * ((size - len(head.encode())) // len(line.encode()))
    source = head + body
    return source + "#" * (size - len(source.encode()))


def test_a_submission_as_large_as_the_api_accepts_runs_in_a_pod(
    on_kubernetes: tuple[Server, FakeKubernetes],
) -> None:
    server, fake = on_kubernetes
    limit = ServerSettings().max_request_bytes
    body = {"language": "python", "stdin": "x" * 1000}
    source = program_of(limit)
    for _ in range(3):  # JSON escapes every newline: shrink by what the request is over
        request = json.dumps({**body, "source": source}, ensure_ascii=False).encode()
        if len(request) <= limit:
            break
        source = program_of(len(source.encode()) - (len(request) - limit) - 1024)
    assert limit - 4096 < len(request) <= limit
    with server.client(server.alice_key) as client:
        response = client.post(
            "/api/v1/executions",
            content=request,
            params={"wait": "true", "timeout": "60"},
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "succeeded", result
    encoded = source.encode()
    assert result["stdout"] == f"{hashlib.sha256(encoded).hexdigest()} {len(encoded)}\n"
    assert_nothing_left(fake)
