"""Faults: the API and every role in OS processes of their own (two workers) on a Kafka-protocol
broker and a shared PostgreSQL store; ~200 runs in the local sandbox while each role in turn
is killed with SIGKILL mid-flight and restarted. Nothing accepted is lost, nothing runs twice,
the read model misses nothing, event streams reach the end, lost runs are reported.

The same on MongoDB, and with the Kubernetes sandbox: the workers run each execution as a pod
on the adapter's fake API server (its kubelet runs the pod's launcher as a local process);
the pods a killed worker left are deleted by its restart, and none is left at the end."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from codeexec.domain.events import ExecutionFailed, ExecutionTimedOut
from tests.system.cluster import Cluster, local_sandbox_missing
from tests.system.fake_kubernetes import FakeKubernetes
from tests.system.ledger import History, Ledger, read_views
from tests.system.workload import Follower, Submission, chunks_program, new_key, submit

pytestmark = pytest.mark.integration

EXECUTIONS = 200
USERS = 8  # the default limits (60 a minute, 4 running per user) admit 25 runs each
SUBMIT_EVERY_S = 0.45  # the load lasts until the API is killed: its retries cross that
VICTIMS = ("worker-1", "coordinator", "saga", "relay", "projections", "api")
TEST_ENV = {
    # A member killed with SIGKILL holds its partitions until its session times out:
    # Kafka's least session timeout, so the group moves on within seconds.
    "CODEEXEC_KAFKA_SESSION_TIMEOUT_MS": "6000",
    "CODEEXEC_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
    "CODEEXEC_KAFKA_REVOKE_GRACE_S": "5",
    "CODEEXEC_HEARTBEAT_S": "0.5",
    "CODEEXEC_SHUTDOWN_GRACE_S": "5",
}


@pytest.fixture(params=["postgres", "mongo", "kubernetes"])
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with contextlib.ExitStack() as stack:
        yield stack.enter_context(_cluster(tmp_path, request.param, stack))


@contextlib.contextmanager
def _cluster(tmp_path: Path, variant: str, stack: contextlib.ExitStack) -> Iterator[Cluster]:
    env, store, sandbox = dict(TEST_ENV), variant, "local"
    fake: FakeKubernetes | None = None
    if variant == "kubernetes":
        fake = stack.enter_context(FakeKubernetes(tmp_path / "kubernetes"))
        env.update(fake.env())
        store, sandbox = "postgres", "kubernetes"
    elif reason := local_sandbox_missing():
        pytest.fail(f"the local sandbox is needed: {reason}")
    with Cluster(tmp_path, sandbox=sandbox, extra_env=env, store=store) as running:
        running.fake_kubernetes = fake
        running.add_api("api")
        running.add_role("coordinator", ["coordinator"])
        running.add_role("saga", ["saga"])
        running.add_role("relay", ["relay"])
        running.add_role("projections", ["projections"])
        running.add_role("operators", ["dead-letters", "replay"])
        for n in (1, 2):
            running.add_role(f"worker-{n}", ["worker"], {"CODEEXEC_WORKER_ID": f"worker-{n}"})
        running.start()
        try:
            yield running
        except BaseException:
            print(running.logs())
            raise


async def until(what: str, check: Callable[[], object], within_s: float = 60.0) -> None:
    """Poll `check()` (run in a thread: it reads the store) until it holds."""
    deadline = time.monotonic() + within_s
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"not within {within_s} s: {what}"
        await asyncio.sleep(0.5)


def in_flight(ledger: Ledger, worker: str | None) -> list[UUID]:
    return running_on(ledger.refresh(), worker)


def running_on(
    histories: dict[UUID, History], worker: str | None, *, printed: bool = True
) -> list[UUID]:
    """Executions started (on `worker`, or any) and not ended; with `printed`, only those
    that recorded output already (a run well in flight)."""
    return [
        i
        for i, h in histories.items()
        if h.starts
        and not h.terminals
        and (h.stdout() or not printed)
        and (worker is None or h.starts[-1].worker_id == worker)
    ]


async def test_every_role_killed_mid_flight_loses_nothing_and_runs_nothing_twice(
    cluster: Cluster,
) -> None:
    ledger = Ledger(cluster.store_config())
    try:
        await run_and_check(cluster, ledger)
    finally:
        ledger.close()


async def run_and_check(cluster: Cluster, ledger: Ledger) -> None:
    admin = cluster.create_key(admin=True)
    tokens = [cluster.create_key(user=f"user{n}") for n in range(USERS)]
    submissions: list[Submission] = []
    followers: list[Follower] = []
    following: list[asyncio.Task[Follower]] = []
    lost: dict[UUID, bytes] = {}  # runs on the killed worker: their output at the kill
    watched: list[Follower] = []  # streams open when the API is killed
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=cluster.url(), timeout=30, limits=limits) as http:

        def follow(execution_id: UUID, token: str) -> Follower:
            follower = Follower(execution_id, token)
            followers.append(follower)
            following.append(asyncio.create_task(follower.run(http)))
            return follower

        async def submit_one(n: int, chunks: int = 3, pause_s: float = 0.3) -> Submission:
            source, stdout = chunks_program(f"run{n}", chunks, pause_s)
            s = Submission(new_key(), f"user{n % USERS}", source, stdout)
            submissions.append(s)
            await submit(http, tokens[n % USERS], s)
            assert s.refused is None, s.refused
            assert s.id is not None
            if n % 10 == 0:
                follow(s.id, tokens[n % USERS])
            return s

        async def steady_load() -> None:
            for n in range(EXECUTIONS):
                await submit_one(n)
                await asyncio.sleep(SUBMIT_EVERY_S)

        began = time.monotonic()

        def note(what: str) -> None:  # the timeline, shown by pytest when the test fails
            print(f"{time.monotonic() - began:7.1f} s  {what}", flush=True)

        load = asyncio.create_task(steady_load())
        for victim in VICTIMS:
            node = cluster.nodes[victim]
            worker = victim if victim.startswith("worker") else None
            await until(f"a run in flight to kill {victim}", partial(in_flight, ledger, worker))
            if victim == "api":
                # Streams open across the kill: long runs followed until they print.
                for n in range(EXECUTIONS, EXECUTIONS + USERS):
                    s = await submit_one(n, chunks=6, pause_s=0.5)
                    assert s.id is not None
                    watched.append(follow(s.id, tokens[n % USERS]))
                await until("followers mid-stream", lambda: all(f.events for f in watched))
            await asyncio.to_thread(node.kill)
            note(f"killed {victim}; {len(submissions)} submitted")
            if worker is not None:
                await asyncio.sleep(0.3)  # a commit the worker sent as it died lands
                histories = await asyncio.to_thread(ledger.refresh)
                # Every run the dead worker had started is lost, printed yet or not.
                lost = {
                    i: histories[i].stdout() for i in running_on(histories, worker, printed=False)
                }
                assert lost, "the worker was killed with no run of its own in flight"
            await asyncio.sleep(0.5)
            await asyncio.to_thread(node.restart)
            note(f"{victim} restarted and ready")
        await load
        accepted = [s.id for s in submissions if s.id is not None]
        assert len(accepted) == len(submissions) >= EXECUTIONS

        def all_ended() -> bool:
            histories = ledger.refresh()
            return all(histories.get(i, History()).terminals for i in accepted)

        note(f"all {len(submissions)} accepted")
        await until("every accepted execution ended", all_ended, within_s=180)
        note("all ended")
        for follower in await asyncio.gather(*following):
            assert follower.done
        histories = await asyncio.to_thread(ledger.refresh)

        def projected() -> bool:
            views = read_views(cluster.store_config(), accepted)
            return all(
                (v := views[i]) is not None and v.version_seen == histories[i].last_version
                for i in accepted
            )

        await until("the read model caught up", projected)
        views = await asyncio.to_thread(read_views, cluster.store_config(), accepted)
        listed = await list_all(http, admin)

    # Exactly one terminal event each; no run started twice, anywhere in the store.
    for s in submissions:
        assert s.id is not None
        h = histories[s.id]
        assert len(h.terminals) == 1, (s.id, [e.type_name for e in h.events])
        assert len(h.starts) <= 1, (s.id, [e.worker_id for e in h.starts])
    assert all(len(h.starts) <= 1 for h in histories.values())

    # Lost with its worker: reported with the output it had, never run again.
    for execution_id, output_then in lost.items():
        h = histories[execution_id]
        assert isinstance(h.terminals[0], ExecutionFailed | ExecutionTimedOut), h.terminals
        assert len(h.starts) == 1
        view = views[execution_id]
        assert view is not None
        # Reported by the restarted worker (or, had it not come back, by the saga's deadline).
        assert view.status in ("internal_error", "time_limit_exceeded"), view
        assert view.stdout.startswith(output_then), (view.stdout, output_then)
    # Every other run ran once, to its end, its output whole and not repeated.
    for s in submissions:
        assert s.id is not None
        if s.id not in lost:
            view = views[s.id]
            assert view is not None and view.status == "succeeded", (s.id, view)
            assert view.stdout == s.expected_stdout, (s.id, view.stdout)

    # The read model misses no event (and folded none twice); the list API serves it.
    for i in accepted:
        view = views[i]
        assert view is not None
        own = histories[i].own
        assert (view.version_seen, view.events) == (histories[i].last_version, len(own))
        assert listed[i] == view.status

    # Event streams: every event once, in order, to the terminal one, across API restarts.
    for follower in followers:
        h = histories[follower.execution_id]
        assert [n for n, _ in follower.events] == list(range(1, h.last_version + 1))
        assert [e for _, e in follower.events] == [e.type_name for e in h.own]
    assert any(f.breaks for f in watched), "no stream was open when the API was killed"

    # Everything still stops cleanly (SIGTERM: exit 0).
    for node in cluster.nodes.values():
        assert node.stop() == 0, f"{node.name}:\n{node.log_tail()}"

    # Pods: every run's deleted, the killed worker's too (by its restart's sweep).
    if cluster.fake_kubernetes is not None:
        assert cluster.fake_kubernetes.objects() == {"pods": [], "configmaps": []}


async def list_all(http: httpx.AsyncClient, admin: str) -> dict[UUID, str]:
    """Every execution's status through the list API, all pages, as an admin sees them."""
    found: dict[UUID, str] = {}
    cursor: str | None = None
    while True:
        params = {"user": "*", "limit": "100", **({"cursor": cursor} if cursor else {})}
        response = await http.get(
            "/api/v1/executions", params=params, headers={"Authorization": f"Bearer {admin}"}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        found.update({UUID(item["id"]): item["status"] for item in page["items"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return found
