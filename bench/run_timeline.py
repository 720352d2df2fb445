"""Where a run waits: a per-run timeline through `codeexec serve` (local sandbox).

Starts the server in a child process with tracing hooks (this file, `--serve`: class methods
wrapped to note a monotonic time per hop; nothing of the product is changed on disk), drives
hello-world `POST ?wait=true` with 1 and then 8 clients, and prints, per run, the mean time
from the client's send to each hop, and the store thread's turns (queueing, work, commit,
the loop's wake-up). Clocks agree: both processes read CLOCK_MONOTONIC (`perf_counter`).

    .venv/bin/python bench/run_timeline.py --runs 40 --seconds 4
    PYTHONPATH=OTHER/src:OTHER/entrypoints/src .venv/bin/python bench/run_timeline.py  # other code
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

TRACE: list[tuple[float, str, str, str]] = []  # (time, execution id or "", hop, detail)


def note(key: object, hop: str, detail: str = "") -> None:
    TRACE.append((time.perf_counter(), str(key), hop, detail))


def install_hooks(dump_to: str) -> None:
    from codeexec.adapters.memory_bus import InMemoryEventBus
    from codeexec.commands import CommandService
    from codeexec.service import store_thread
    from codeexec.service.consumer import Consumer
    from codeexec.service.store import ExecutionStore
    from codeexec.service.store_thread import StoreThread
    from codeexec.service.worker import WorkerProcess

    submitted: dict[int, tuple[float, str]] = {}
    busy: dict[str, float] = defaultdict(float)

    def name_of(fn: Any) -> str:
        return getattr(fn, "__qualname__", type(fn).__name__)

    submit = StoreThread._submit

    def _submit(self: Any, fn: Any, args: Any, request: bool, alone: bool = False) -> Any:
        job = submit(self, fn, args, request, alone)
        submitted[id(job)] = (time.perf_counter(), name_of(fn))
        return job

    StoreThread._submit = _submit  # type: ignore[method-assign]

    claim = StoreThread._claim

    def _claim(self: Any, job: Any) -> bool:
        at, fn = submitted.pop(id(job), (time.perf_counter(), "?"))
        note("", "store_queue", f"{fn}|{time.perf_counter() - at:.6f}")
        return claim(self, job)

    StoreThread._claim = _claim  # type: ignore[method-assign]

    call = StoreThread._call

    def _call(self: Any, fn: Any, args: Any) -> Any:
        started = time.perf_counter()
        out = call(self, fn, args)
        busy[name_of(fn)] += time.perf_counter() - started
        note("", "store_call", f"{name_of(fn)}|{time.perf_counter() - started:.6f}")
        return out

    StoreThread._call = _call  # type: ignore[method-assign]

    end = StoreThread._end

    def _end(self: Any, turn: Any, outcomes: Any) -> Any:
        started = time.perf_counter()
        out = end(self, turn, outcomes)
        note("", "store_commit", f"{len(outcomes)}|{time.perf_counter() - started:.6f}")
        note("", "turn_answered", "")
        return out

    StoreThread._end = _end  # type: ignore[method-assign]

    complete = store_thread._complete_all

    def _complete_all(outcomes: Any) -> None:
        note("", "loop_took_turn", str(len(outcomes)))
        complete(outcomes)

    store_thread._complete_all = _complete_all

    record = ExecutionStore.record

    def _record(self: Any, events: Any, aggregates: Any = (), tracking: Any = None) -> Any:
        for event in events:
            note(event.execution_id, "recorded", type(event).__name__)
        return record(self, events, aggregates, tracking)

    ExecutionStore.record = _record  # type: ignore[method-assign]

    publish = InMemoryEventBus.publish

    async def _publish(self: Any, messages: Any) -> None:
        for message in messages:
            note(
                message.key,
                "published",
                f"{message.headers.get('event-type', '?')}>{message.topic}",
            )
        await publish(self, messages)

    InMemoryEventBus.publish = _publish  # type: ignore[method-assign]

    consume = Consumer._consume

    async def _consume(self: Any, sub: Any, batch: Any) -> None:
        for message in batch:
            note(message.key, "polled", f"{self.process.group}:{message.headers.get('event-type')}")
        await consume(self, sub, batch)
        for message in batch:
            note(
                message.key, "consumed", f"{self.process.group}:{message.headers.get('event-type')}"
            )

    Consumer._consume = _consume  # type: ignore[method-assign]

    launch = WorkerProcess._launch

    def _launch(self: Any, execution_id: Any, sandbox_id: str, spec: Any) -> None:
        note(execution_id, "launch")
        launch(self, execution_id, sandbox_id, spec)

    WorkerProcess._launch = _launch  # type: ignore[method-assign]

    pump = WorkerProcess._pump

    async def _pump(self: Any, execution_id: Any, run: Any) -> Any:
        note(execution_id, "sandbox_started")
        out = await pump(self, execution_id, run)
        note(execution_id, "output_ended")
        return out

    WorkerProcess._pump = _pump  # type: ignore[method-assign]

    record_w = WorkerProcess._record

    async def _record_w(self: Any, execution_id: Any, change: Any, *a: Any, **k: Any) -> None:
        note(execution_id, "worker_record_asked")
        await record_w(self, execution_id, change, *a, **k)
        note(execution_id, "worker_record_done")

    WorkerProcess._record = _record_w  # type: ignore[method-assign]

    csubmit = CommandService.submit

    async def _csubmit(self: Any, *a: Any, **k: Any) -> Any:
        started = time.perf_counter()
        view = await csubmit(self, *a, **k)
        TRACE.append((started, str(view.id), "submit_called", ""))
        note(view.id, "submit_returned")
        return view

    CommandService.submit = _csubmit  # type: ignore[method-assign]

    wait = CommandService.wait

    async def _wait(self: Any, execution_id: Any, timeout: Any = None) -> Any:
        view = await wait(self, execution_id, timeout)
        note(execution_id, "wait_returned", str(view.status))
        return view

    CommandService.wait = _wait  # type: ignore[method-assign]

    find_view = CommandService.find_view

    async def _find_view(self: Any, execution_id: Any) -> Any:
        note(execution_id, "view_read")
        view = await find_view(self, execution_id)
        note(execution_id, "view_got", "terminal" if view and view.terminal else "not")
        return view

    CommandService.find_view = _find_view  # type: ignore[method-assign]

    def dump(*_: object) -> None:
        with open(dump_to, "wb") as f:
            pickle.dump((TRACE, dict(busy)), f)
        TRACE.clear()
        busy.clear()

    signal.signal(signal.SIGUSR1, dump)


def serve(argv: list[str]) -> int:
    install_hooks(os.environ["RUN_TIMELINE_DUMP"])
    if os.environ.get("RUN_TIMELINE_SWITCH_S"):
        sys.setswitchinterval(float(os.environ["RUN_TIMELINE_SWITCH_S"]))
    from codeexec_server.cli import main

    return main(argv)


# -- the driver -----------------------------------------------------------------------------


async def drive(url: str, key: str, clients: int, seconds: float, runs: int) -> list[Any]:
    import httpx

    sent: list[tuple[float, float, str]] = []
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients)
    deadline = time.perf_counter() + seconds
    from http_bench import body as body_of

    body = body_of("python")
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=70, limits=limits) as http:

        async def client() -> None:
            while time.perf_counter() < deadline and len(sent) < runs:
                started = time.perf_counter()
                response = await http.post("/api/v1/executions", params={"wait": "true"}, json=body)
                sent.append((started, time.perf_counter(), response.json()["id"]))

        await asyncio.gather(*(client() for _ in range(clients)))
    return sent


def analyse(label: str, sent: list[Any], trace: list[Any], busy: dict[str, float]) -> None:
    by_run: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for at, key, hop, detail in trace:
        if key:
            by_run[key].append((at, hop, detail))
    offsets: dict[str, list[float]] = defaultdict(list)
    totals = []
    for started, ended, execution in sent[len(sent) // 5 :]:  # the first fifth warms up
        totals.append(ended - started)
        seen: set[str] = set()
        for at, hop, detail in sorted(by_run.get(execution, [])):
            name = f"{hop} {detail}".strip()
            while name in seen:
                name += "'"
            seen.add(name)
            offsets[name].append(at - started)
        offsets["~ response received"].append(ended - started)
    print(
        f"\n== {label}: {len(totals)} runs, end to end p50 {statistics.median(totals) * 1e3:.1f} ms"
    )
    rows = sorted((statistics.median(v), k, len(v)) for k, v in offsets.items())
    for med, name, n in rows:
        if n >= len(totals) // 2:
            print(f"  {med * 1e3:7.2f} ms  {name}")
    queue: dict[str, list[float]] = defaultdict(list)
    calls: dict[str, list[float]] = defaultdict(list)
    commits, wakes, turn_ends = [], [], []
    for at, _key, hop, detail in trace:
        if hop == "store_queue":
            fn, value = detail.split("|")
            queue[fn].append(float(value))
        elif hop == "store_call":
            fn, value = detail.split("|")
            calls[fn].append(float(value))
        elif hop == "store_commit":
            commits.append((int(detail.split("|")[0]), float(detail.split("|")[1])))
        elif hop == "turn_answered":
            turn_ends.append(at)
        elif hop == "loop_took_turn":
            wakes.append(at)
    span = max(t[0] for t in trace) - min(t[0] for t in trace)
    print(
        f"  store thread: {len(commits)} turns, mean {statistics.fmean(c for c, _ in commits):.2f} "
        f"calls, commit p50 {statistics.median(c for _, c in commits) * 1e3:.2f} ms; "
        f"busy {sum(busy.values()) / span * 100:.0f}% of {span:.1f} s"
    )
    lag = [w - e for e, w in zip(turn_ends, wakes, strict=False) if w >= e]
    if lag:
        print(
            f"  loop takes a turn's answers after p50 {statistics.median(lag) * 1e3:.2f} ms, "
            f"p90 {sorted(lag)[len(lag) * 9 // 10] * 1e3:.2f} ms"
        )
    print(f"  store thread work per run {sum(busy.values()) / len(sent) * 1e3:.2f} ms")
    print("  store calls: name, count, queue wait p50/p90, work p50 (ms), total work s")
    for fn in sorted(calls, key=lambda f: -sum(calls[f])):
        q = sorted(queue.get(fn, [0.0]))
        print(
            f"    {fn[:60]:60s} {len(calls[fn]):5d} {q[len(q) // 2] * 1e3:6.2f} "
            f"{q[len(q) * 9 // 10] * 1e3:6.2f} {statistics.median(calls[fn]) * 1e3:6.2f} "
            f"{sum(calls[fn]):6.2f}"
        )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        return serve(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import http_bench

    with tempfile.TemporaryDirectory() as data_dir:
        dump = str(Path(data_dir) / "trace.pickle")
        env = {**os.environ, "RUN_TIMELINE_DUMP": dump}
        original = subprocess.Popen

        def popen(command: list[str], **kw: Any) -> Any:
            command = [command[0], __file__, "--serve", *command[3:]]
            return original(command, **{**kw, "env": env})

        http_bench.subprocess.Popen = popen  # type: ignore[attr-defined,assignment]
        process, url, key = http_bench.start_server("local", Path(data_dir) / "d")
        try:
            import httpx

            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
                http_bench.open_the_gates(c)
            time.sleep(1.0)
            for clients, runs in ((1, args.runs), (8, 100_000)):
                process.send_signal(signal.SIGUSR1)  # clear
                time.sleep(0.3)
                sent = asyncio.run(drive(url, key, clients, args.seconds, runs))
                time.sleep(0.3)
                process.send_signal(signal.SIGUSR1)
                time.sleep(0.5)
                with open(dump, "rb") as f:
                    trace, busy = pickle.load(f)
                analyse(f"{clients} client(s)", sent, trace, busy)
        finally:
            process.terminate()
            process.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
