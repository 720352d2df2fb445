"""POST without wait from wrk: the accept latency as a load generator in C sees it.

httpx inflates the figure on a 2-core machine: the generator's own CPU is in every sample
(its p99 read 2.5 s where wrk's read 0.37 s). Used by http_bench.py and distributed_bench.py;
needs `apt-get install wrk` (returns None without it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

HELLO = {"fake": "out Hello", "python": 'print("Hello, world!")'}

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = os.getenv("CODEEXEC_BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("CODEEXEC_BENCH_KEY")
"""


def accept_with_wrk(
    url: str,
    key: str,
    clients: int,
    seconds: float,
    language: str = "fake",
    *,
    wait: bool = False,
) -> dict[str, float] | None:
    """POST without wait from wrk (C, so the load generator's own CPU does not count as
    our latency, as httpx's does on 2 cores): p50 and p99 in ms, requests/s and refused
    (non-2xx). `wait`: POST `?wait=true`, each answer a finished run (rate: runs/s). None
    when wrk is not installed (`apt-get install wrk`)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    body = {"language": language, "source": HELLO.get(language, HELLO["python"])}
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        out = subprocess.run(
            [
                wrk,
                "-t2",
                f"-c{clients}",
                f"-d{seconds:g}s",
                "--latency",
                "-s",
                script.name,
                url + "/api/v1/executions" + ("?wait=true" if wait else ""),
            ],
            env={**os.environ, "CODEEXEC_BENCH_KEY": key, "CODEEXEC_BENCH_BODY": json.dumps(body)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    figures: dict[str, float] = {}
    for label, name in (("50%", "p50"), ("99%", "p99")):
        found = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert found, out
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
        figures[name] = float(found.group(1)) * scale
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    assert rate, out
    figures["rate"] = float(rate.group(1))
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["refused"] = float(refused.group(1)) if refused else 0.0
    return figures
