"""The few Kubernetes API calls the sandbox makes, on kubernetes_asyncio, retried and bounded.

429 waits the Retry-After the server asks for, 5xx and lost connections back off
exponentially with jitter, each attempt has a timeout and the attempts are counted: nothing
waits forever. Bodies stay plain JSON (no model classes): cheaper, and exactly what is sent."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import aiohttp
from kubernetes_asyncio import client

from codeexec_kubernetes.settings import KubernetesSettings

log = logging.getLogger(__name__)

RETRIED = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 30.0


class KubeApiError(Exception):
    """The API refused or kept failing a call; `status` is its HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return min(float(value), MAX_RETRY_AFTER_S) if value is not None else None
    except ValueError:
        return None


class KubeApi:
    def __init__(self, api_client: client.ApiClient, settings: KubernetesSettings) -> None:
        self.core = client.CoreV1Api(api_client)
        self.networking = client.NetworkingV1Api(api_client)
        self.settings = settings
        self.namespace = settings.namespace
        self.retried = 0
        """Attempts repeated after a 429, a 5xx or a lost connection (for tests and metrics)."""

    async def _call(
        self, what: str, send: Callable[[], Awaitable[Any]], stream: bool = False
    ) -> Any:
        """The response's JSON (or, for a stream, the open response), after retries."""
        delay = 0.05
        attempts = self.settings.retries
        for attempt in range(1, attempts + 1):
            wait: float | None = None
            try:
                response = await send()
            except (aiohttp.ClientError, TimeoutError) as error:
                if attempt == attempts:
                    raise KubeApiError(0, f"{what}: no answer: {error!r}") from None
                status, message = 0, repr(error)
            else:
                status = response.status
                if 200 <= status < 300:
                    if stream:
                        return response
                    body = await response.read()
                    response.release()
                    return json.loads(body) if body else {}
                body = await response.read()
                response.release()
                message = _status_message(body)
                if status not in RETRIED or attempt == attempts:
                    raise KubeApiError(status, f"{what}: {message}")
                if status == 429:
                    wait = _retry_after(response.headers)
            self.retried += 1
            pause = wait if wait is not None else delay * (1 + random.random())
            log.info(
                "%s answered %s (%s); retry %d in %.2fs", what, status, message, attempt, pause
            )
            await asyncio.sleep(pause)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def _timeout(self) -> float:
        return self.settings.request_timeout_s

    async def create_config_map(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(  # type: ignore[no-any-return]
            f"create configmap {body['metadata']['name']}",
            lambda: self.core.create_namespaced_config_map(
                self.namespace,
                cast(Any, body),
                _preload_content=False,
                _request_timeout=self._timeout(),
            ),
        )

    async def create_pod(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(  # type: ignore[no-any-return]
            f"create pod {body['metadata']['name']}",
            lambda: self.core.create_namespaced_pod(
                self.namespace,
                cast(Any, body),
                _preload_content=False,
                _request_timeout=self._timeout(),
            ),
        )

    async def read(self, kind: str, name: str) -> dict[str, Any]:
        method = (
            self.core.read_namespaced_pod if kind == "pod" else self.core.read_namespaced_config_map
        )
        return await self._call(  # type: ignore[no-any-return]
            f"read {kind} {name}",
            lambda: method(
                name, self.namespace, _preload_content=False, _request_timeout=self._timeout()
            ),
        )

    async def delete(self, kind: str, name: str, grace_s: int = 0) -> bool:
        """Delete a pod or configmap now; False if it was already gone."""
        method = (
            self.core.delete_namespaced_pod
            if kind == "pod"
            else self.core.delete_namespaced_config_map
        )
        body: Any = {"gracePeriodSeconds": grace_s, "propagationPolicy": "Background"}
        try:
            await self._call(
                f"delete {kind} {name}",
                lambda: method(
                    name,
                    self.namespace,
                    body=body,
                    grace_period_seconds=grace_s,
                    _preload_content=False,
                    _request_timeout=self._timeout(),
                ),
            )
        except KubeApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def list(self, kind: str, selector: str) -> dict[str, Any]:
        method = (
            self.core.list_namespaced_pod if kind == "pod" else self.core.list_namespaced_config_map
        )
        return await self._call(  # type: ignore[no-any-return]
            f"list {kind}s {selector}",
            lambda: method(
                self.namespace,
                label_selector=selector,
                _preload_content=False,
                _request_timeout=self._timeout(),
            ),
        )

    async def network_policies(self) -> Sequence[dict[str, Any]]:
        listing = await self._call(
            "list networkpolicies",
            lambda: self.networking.list_namespaced_network_policy(
                self.namespace, _preload_content=False, _request_timeout=self._timeout()
            ),
        )
        items: Sequence[dict[str, Any]] = listing.get("items") or []
        return items

    async def watch_pods(self, selector: str, resource_version: str, timeout_s: int) -> Any:
        """An open watch stream (one JSON event per line) from `resource_version`."""
        return await self._call(
            f"watch pods {selector}",
            lambda: self.core.list_namespaced_pod(
                self.namespace,
                label_selector=selector,
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_s,
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(
                    sock_connect=self._timeout(), sock_read=timeout_s + self._timeout()
                ),
            ),
            stream=True,
        )

    async def pod_log(self, name: str) -> Any:
        """An open, followed log stream of the run's container from its start. (A reader
        that reconnects reads it again and skips the frames it has: the log API has no
        offset, and `sinceSeconds` would trust two clocks to agree.)"""
        return await self._call(
            f"log of pod {name}",
            lambda: self.core.read_namespaced_pod_log(
                name,
                self.namespace,
                container="sandbox",
                follow=True,
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(sock_connect=self._timeout()),
            ),
            stream=True,
        )


async def delete_quietly(api: KubeApi, objects: Sequence[tuple[str, str]]) -> int:
    """Delete these (kind, name) at once, grace 0; how many were there. A failure is logged
    and left to the sweeper."""
    results = await asyncio.gather(
        *(api.delete(kind, name, grace_s=0) for kind, name in objects), return_exceptions=True
    )
    for (kind, name), result in zip(objects, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("could not delete %s %s: %r", kind, name, result)
    return sum(1 for r in results if r is True)


async def delete_run(
    api: KubeApi, head: str, parts: Sequence[str], *, pod: str | None = None
) -> None:
    """A run's objects: its pod, then its ConfigMaps' parts, then the head (named after the
    run) last: while anything of the run is left, its head is, and owns it."""
    if pod is not None:
        await delete_quietly(api, [("pod", pod)])
    await delete_quietly(api, [("configmap", name) for name in parts])
    await delete_quietly(api, [("configmap", head)])


def _status_message(body: bytes) -> str:
    try:
        status = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    if isinstance(status, dict):
        return str(status.get("message") or status.get("reason") or status)
    return str(status)
