"""The in-pod launcher: runs each stage of a run and frames its output into the container log.

Shipped to the pod in the run's first ConfigMap and run as the container's PID 1 by the
image's Python (stdlib only). It puts the submitted files together from the payload directory
(one projected volume of the run's ConfigMaps: a large file or stdin comes in parts `KEY.0`,
`KEY.1`, ... joined here, its size checked against the plan's). The pod log API merges
stdout and stderr, so the launcher is the only writer of the container's stdout and writes
one ASCII line per frame:

    cx SEQ KIND DATA      KIND: co ce (compile stdout/stderr), ro re (run), s (stage report,
                          DATA is JSON), x (end); DATA is base64 for output

SEQ counts up from 1, so a reader that reconnects skips what it already has. Limits the
kubelet cannot give per stage are applied here to the child (rlimits, wall time, output);
the pod's own limits (memory, ephemeral storage, activeDeadlineSeconds) back them from outside.
As PID 1 it cannot be killed from inside the container, and it makes itself non-dumpable so
the code it runs cannot open its stdout through /proc and forge frames.

usage: python3 launcher.py PAYLOAD_DIR WORK_DIR
"""

from __future__ import annotations

import base64
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

CHUNK = 8192  # keeps every frame line far below the kubelet's 16 KiB log line
PR_SET_DUMPABLE = 4
DRAIN_S = 0.2


class Framer:
    def __init__(self) -> None:
        self.seq = 0

    def frame(self, kind: str, data: str) -> None:
        self.seq += 1
        sys.stdout.write(f"cx {self.seq} {kind} {data}\n")
        sys.stdout.flush()

    def output(self, kind: str, data: bytes) -> None:
        self.frame(kind, base64.b64encode(data).decode("ascii"))


def _not_dumpable() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: nothing to protect against here
        pass


def _child_limits(limits: dict[str, Any]) -> None:
    cpu = max(1, int(limits["cpu_time_s"] + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    size = int(limits["file_size_bytes"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    files = int(limits["open_files"])
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))


def run_stage(framer: Framer, stage: dict[str, Any], stdin: Any) -> dict[str, Any]:
    """`stdin`: an open file the stage reads (closed here), or None for nothing."""
    limits = stage["limits"]
    prefix = "c" if stage["name"] == "compile" else "r"
    stdin = stdin if stdin is not None else open(os.devnull, "rb")  # noqa: SIM115
    started = time.monotonic()
    try:
        child = subprocess.Popen(
            stage["argv"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: _child_limits(limits),
        )
    except OSError as error:
        stdin.close()
        return {"stage": stage["name"], "error": f"cannot start {stage['argv'][0]}: {error}"}
    stdin.close()
    assert child.stdout is not None and child.stderr is not None
    sizes = {"o": 0, "e": 0}
    truncated = {"o": False, "e": False}
    killed_for: str | None = None
    deadline = started + float(limits["wall_time_s"])
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ, "o")
    selector.register(child.stderr, selectors.EVENT_READ, "e")
    open_streams = 2
    while open_streams:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if not _exited(child.pid):
                killed_for = killed_for or "wall"
            _kill(child)
            break
        if _exited(child.pid):
            # The program is done; what it left running in the background may hold the
            # pipes open: read what is already there, then end the stage.
            deadline = min(deadline, time.monotonic() + DRAIN_S)
        for key, _ in selector.select(timeout=min(remaining, 1.0)):
            stream: str = key.data
            data = os.read(key.fd, CHUNK)
            if not data:
                selector.unregister(key.fileobj)
                open_streams -= 1
                continue
            room = int(limits["output_bytes"]) - sizes[stream]
            if len(data) > room:
                data, truncated[stream] = data[: max(room, 0)], True
                killed_for = killed_for or "output"
                _kill(child)
            if data:
                sizes[stream] += len(data)
                framer.output(prefix + stream, data)
    selector.close()
    _pid, status, usage = os.wait4(child.pid, 0)
    _kill(child)  # what it left behind in its session
    wall = time.monotonic() - started
    report: dict[str, Any] = {
        "stage": stage["name"],
        "exit_code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "killed_for": killed_for,
        "cpu_time_s": usage.ru_utime + usage.ru_stime,
        "wall_time_s": wall,
        "memory_bytes": usage.ru_maxrss * 1024,
        "stdout_truncated": truncated["o"],
        "stderr_truncated": truncated["e"],
    }
    return report


def _exited(pid: int) -> bool:
    """Whether the child has ended, leaving it to be reaped (with its rusage) by wait4."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _kill(child: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class PayloadError(Exception):
    """The run's files could not be put together as the plan says."""


def read_plan(payload: str) -> dict[str, Any]:
    """plan.json, or its parts plan.json.0, .1, ... in order when it was cut (a plan with
    a part missing is not valid JSON, so it cannot pass for a whole one)."""
    path = os.path.join(payload, "plan.json")
    if os.path.exists(path):
        with open(path, "rb") as file:
            return json.loads(file.read())  # type: ignore[no-any-return]
    text = bytearray()
    count = 0
    while os.path.exists(part := f"{path}.{count}"):
        with open(part, "rb") as file:
            text += file.read()
        count += 1
    return json.loads(text)  # type: ignore[no-any-return]


def _parts(payload: str, key: str, parts: int) -> list[str]:
    if parts == 1:
        return [os.path.join(payload, key)]
    return [os.path.join(payload, f"{key}.{i}") for i in range(parts)]


def _join(paths: list[str], target: Any, size: int, what: str) -> None:
    """Copy the parts into `target` in order, bytes-exact: the size must come out right."""
    written = 0
    for path in paths:
        with open(path, "rb") as part:
            while chunk := part.read(1 << 20):
                target.write(chunk)
                written += len(chunk)
    if written != size:
        raise PayloadError(f"{what}: {written} bytes from {len(paths)} part(s), not {size}")


def unpack(payload: str, work: str, plan: dict[str, Any]) -> Any:
    """Put the submitted files together in the writable work dir; stdin, open for reading
    (the payload's own file, or the parts joined in an unnamed temporary file)."""
    for key, name, size, parts in plan["files"]:
        target = os.path.join(work, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as file:
            _join(_parts(payload, key, parts), file, size, name)
    if not plan["stdin"]:
        return open(os.devnull, "rb")
    size, parts = plan["stdin"]
    if parts == 1:
        return open(os.path.join(payload, "stdin"), "rb")
    joined = tempfile.TemporaryFile()  # noqa: SIM115  (TMPDIR: the pod's /tmp)
    _join(_parts(payload, "stdin", parts), joined, size, "stdin")
    joined.seek(0)
    return joined


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as PID 1: ignored unless handled
    _not_dumpable()
    payload, work = argv[1], argv[2]
    framer = Framer()
    plan = read_plan(payload)
    try:
        stdin = unpack(payload, work, plan)
    except (OSError, PayloadError) as error:
        report = {"stage": "setup", "error": f"cannot put the run's files together: {error}"}
        framer.frame("s", json.dumps(report, separators=(",", ":")))
        framer.frame("x", "")
        return 127
    os.chdir(work)
    code = 0
    for stage in plan["stages"]:
        report = run_stage(framer, stage, stdin if stage["name"] == "run" else None)
        framer.frame("s", json.dumps(report, separators=(",", ":")))
        if report.get("error"):
            code = 127
            break
        if report["signal"] is not None:
            code = 128 + int(report["signal"])
        else:
            code = int(report["exit_code"])
        if stage["name"] == "compile" and (code != 0 or report["killed_for"]):
            break
    framer.frame("x", "")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
