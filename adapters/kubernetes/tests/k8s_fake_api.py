"""A fake Kubernetes API server on loopback, for the subset the sandbox uses, driven by tests.

Pods and ConfigMaps with resourceVersions, list and watch with equality label selectors,
watch expiry (410 Gone) for versions compacted away, pod status written by the tests (or by
FakeKubelet), followed logs that can be dropped mid-stream, deletes with grace periods and
owner garbage collection, and scripted failures (409/422/429/5xx) per method and path."""

from __future__ import annotations

import asyncio
import base64
import bisect
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

KINDS = {"pods": "Pod", "configmaps": "ConfigMap", "networkpolicies": "NetworkPolicy"}
DENY_ALL = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "executor-deny-all", "uid": "np-1", "labels": {}},
    "spec": {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/part-of": "codeexec",
                "app.kubernetes.io/component": "executor",
            }
        },
        "policyTypes": ["Ingress", "Egress"],
    },
}
"""The deploy base's policy for executor pods; every fake starts with it."""
ConfigMapLimit = 1024 * 1024
"""The API server's validation: a ConfigMap's values, decoded, at most 1 MiB."""
EtcdRequestLimit = 1536 * 1024
"""etcd's default --max-request-bytes: no stored object may be larger."""


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, selector.split(",")):
        key, sep, value = term.partition("=")
        if (labels.get(key) != value) if sep else (key not in labels):
            return False
    return True


@dataclass
class Failure:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    after: bool = False
    """Answer the failure after doing the work (a create that succeeded, its answer lost)."""
    message: str = "scripted failure"
    skip: int = 0
    """Matching requests let through before the failures begin (fail the n-th create)."""


@dataclass
class PodLog:
    data: bytearray = field(default_factory=bytearray)
    closed: bool = False
    drop_at: list[int] = field(default_factory=list)
    """Byte offsets at which the next followed streams are cut (once each)."""
    stall_at: list[int] = field(default_factory=list)
    """Byte offsets at which the next streams go silent for good, never closed (a dead
    connection)."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class FakeKube:
    def __init__(self) -> None:
        self.rv = 100
        self.objects: dict[tuple[str, str], dict[str, Any]] = {
            ("networkpolicies", "executor-deny-all"): json.loads(json.dumps(DENY_ALL))
        }
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []
        self.compacted_below = 0
        self.logs: dict[str, PodLog] = {}
        self.failures: list[Failure] = []
        self.requests: list[tuple[str, str]] = []
        self.deletes: list[tuple[str, str, int | None]] = []
        self.on_pod_created: Callable[[dict[str, Any]], None] = lambda pod: None
        self.on_pod_deleted: Callable[[str], None] = lambda name: None
        self._changed = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.extra_routes: list[tuple[str, str, Any]] = []
        self.url = ""

    # -- serving
    async def start(self) -> str:
        # the API server's own limit on a request body (its etcd's is lower: below)
        app = web.Application(middlewares=[self._failures], client_max_size=3 * 2**20)
        base = "/api/v1/namespaces/{ns}/{kind}"
        app.router.add_get("/apis/networking.k8s.io/v1/namespaces/{ns}/{kind}", self._list)
        app.router.add_post(base, self._create)
        app.router.add_get(base, self._list)
        app.router.add_get(base + "/{name}", self._read)
        app.router.add_delete(base + "/{name}", self._delete)
        app.router.add_get(base + "/{name}/log", self._log)
        for method, path, handler in self.extra_routes:
            app.router.add_route(method, path, handler)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        for log in self.logs.values():
            log.closed = True
            log.wake()
        self._bump()
        if self.runner is not None:
            await self.runner.cleanup()

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        times: int = 1,
        after: bool = False,
        headers: dict[str, str] | None = None,
        message: str = "scripted failure",
        skip: int = 0,
    ) -> None:
        """The next `times` requests matching (after `skip` more) answer `status` (a Status
        object)."""
        failure = Failure(
            method, re.compile(path), status, times, headers or {}, after, message, skip
        )
        self.failures.append(failure)

    @web.middleware
    async def _failures(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        for failure in self.failures:
            hit = failure.method == request.method and failure.path.search(request.path_qs)
            if failure.times and hit and failure.skip:
                failure.skip -= 1
            elif failure.times and hit:
                failure.times -= 1
                if failure.after:
                    await handler(request)
                return _status(failure.status, failure.message, failure.headers)
        return await handler(request)  # type: ignore[no-any-return]

    # -- state
    def _bump(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _record(self, event: str, kind: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.history.append((self.rv, kind, event, json.loads(json.dumps(obj))))
        self._bump()

    def pod(self, name: str) -> dict[str, Any] | None:
        return self.objects.get(("pods", name))

    def pods(self) -> list[str]:
        return sorted(n for k, n in self.objects if k == "pods")

    def config_maps(self) -> list[str]:
        return sorted(n for k, n in self.objects if k == "configmaps")

    def set_status(self, name: str, status: dict[str, Any]) -> None:
        """Replace the pod's status (as the kubelet would) and tell the watchers."""
        pod = self.objects[("pods", name)]
        pod["status"] = status
        self._record("MODIFIED", "pods", pod)

    def compact(self) -> None:
        """Forget history, as etcd's compaction does: open watches end with 410 Gone, and so
        does any watch from a version seen so far; a fresh list gives a usable version."""
        self.rv += 1
        self.compacted_below = self.rv
        self._bump()

    def append_log(self, name: str, data: bytes) -> None:
        log = self.logs.setdefault(name, PodLog())
        log.data.extend(data)
        log.wake()

    def close_log(self, name: str) -> None:
        log = self.logs.setdefault(name, PodLog())
        log.closed = True
        log.wake()

    def remove(self, kind: str, name: str) -> None:
        obj = self.objects.pop((kind, name), None)
        if obj is None:
            return
        self._record("DELETED", kind, obj)
        if kind == "pods":
            self.close_log(name)
            self.on_pod_deleted(name)
        uid = obj["metadata"]["uid"]
        for (other_kind, other), dependent in list(self.objects.items()):
            owners = dependent["metadata"].get("ownerReferences") or []
            if any(o.get("uid") == uid for o in owners):
                self.remove(other_kind, other)

    # -- handlers
    async def _create(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        body = await request.json()
        name = body.get("metadata", {}).get("name")
        if kind not in KINDS or body.get("kind") != KINDS[kind] or not name:
            return _status(422, "metadata.name: Required value")
        if (kind, name) in self.objects:
            return _status(409, f'{kind} "{name}" already exists')
        if kind == "configmaps":
            size = sum(len(v.encode()) for v in body.get("data", {}).values())
            size += sum(len(base64.b64decode(v)) for v in body.get("binaryData", {}).values())
            if size > ConfigMapLimit:
                return _status(422, "ConfigMap is invalid: data: Too long")
        if len(json.dumps(body)) > EtcdRequestLimit:  # as stored on a JSON-storage server
            return _status(500, "etcdserver: request is too large")
        meta = body["metadata"]
        meta.update(
            uid=str(uuid.uuid4()),
            namespace=request.match_info["ns"],
            creationTimestamp=now_text(),
        )
        if kind == "pods":
            body["status"] = {"phase": "Pending"}
        self.objects[(kind, name)] = body
        self._record("ADDED", kind, body)
        if kind == "pods":
            self.on_pod_created(body)
        return web.json_response(body, status=201)

    async def _read(self, request: web.Request) -> web.Response:
        obj = self.objects.get((request.match_info["kind"], request.match_info["name"]))
        if obj is None:
            return _status(404, f'"{request.match_info["name"]}" not found')
        return web.json_response(obj)

    async def _delete(self, request: web.Request) -> web.Response:
        kind, name = request.match_info["kind"], request.match_info["name"]
        obj = self.objects.get((kind, name))
        if obj is None:
            return _status(404, f'{kind} "{name}" not found')
        body = await request.json() if request.can_read_body else {}
        grace_text = request.query.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        grace = None if grace_text is None else int(grace_text)
        self.deletes.append((kind, name, grace))
        if kind == "pods" and grace:
            obj["metadata"]["deletionTimestamp"] = now_text()
            self._record("MODIFIED", kind, obj)
            asyncio.get_running_loop().call_later(grace, self.remove, kind, name)
        else:
            self.remove(kind, name)
        return web.json_response(obj)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        selector = request.query.get("labelSelector", "")
        if request.query.get("watch") in ("true", "True", "1"):
            return await self._watch(request, kind, selector)
        items = [
            o
            for (k, _), o in self.objects.items()
            if k == kind and matches(selector, o["metadata"].get("labels") or {})
        ]
        listing = {"kind": KINDS[kind] + "List", "metadata": {"resourceVersion": str(self.rv)}}
        return web.json_response({**listing, "items": items})

    async def _watch(self, request: web.Request, kind: str, selector: str) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or self.rv)
        timeout = float(request.query.get("timeoutSeconds") or 300)
        response = web.StreamResponse()
        await response.prepare(request)
        end = asyncio.get_running_loop().time() + timeout
        sent = since
        index = bisect.bisect_right(self.history, since, key=lambda h: h[0])
        while self.runner is not None and asyncio.get_running_loop().time() < end:
            if sent < self.compacted_below:
                gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
                await response.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                return response
            lines = []
            for rv, k, event, obj in self.history[index:]:
                sent, index = rv, index + 1
                if k == kind and matches(selector, obj["metadata"].get("labels") or {}):
                    lines.append(json.dumps({"type": event, "object": obj}).encode() + b"\n")
            if lines:
                try:
                    await response.write(b"".join(lines))
                except ConnectionError:  # the client went away
                    return response
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), end - asyncio.get_running_loop().time())
            except TimeoutError:
                break
        return response

    async def _log(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        pod = self.pod(name)
        if pod is None:
            return _status(404, f'pods "{name}" not found')
        statuses = pod.get("status", {}).get("containerStatuses") or []
        state = statuses[0].get("state", {}) if statuses else {}
        if not (state.get("running") or state.get("terminated")):
            return _status(400, f'container "sandbox" in pod "{name}" is waiting to start')
        log = self.logs.setdefault(name, PodLog())
        response = web.StreamResponse()
        await response.prepare(request)
        drop_at = log.drop_at.pop(0) if log.drop_at else None
        stall_at = log.stall_at.pop(0) if log.stall_at else None
        sent = 0
        while True:
            end = len(log.data) if drop_at is None else min(len(log.data), drop_at)
            end = end if stall_at is None else min(end, stall_at)
            if end > sent:
                try:
                    await response.write(bytes(log.data[sent:end]))
                except ConnectionError:  # the client went away
                    return response
                sent = end
            if drop_at is not None and sent >= drop_at:
                request.transport.close()  # type: ignore[union-attr]
                return response
            if stall_at is not None and sent >= stall_at:
                await asyncio.Event().wait()  # until the server shuts down
            if log.closed and sent >= len(log.data):
                return response
            if request.query.get("follow") not in ("true", "True"):
                return response
            await log.changed.wait()


def _status(code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code}
    return web.json_response({**body, "message": message}, status=code, headers=headers)
