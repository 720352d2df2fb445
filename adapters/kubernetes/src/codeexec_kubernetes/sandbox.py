"""KubernetesSandbox: the sandbox port on Kubernetes, one hardened pod per run."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes_asyncio import client, config

from codeexec.domain.model import RunSpec
from codeexec.ports.sandbox import (
    Language,
    Sandbox,
    SandboxAlreadyStarted,
    SandboxRun,
    SandboxUnavailable,
    UnknownLanguage,
    UnknownVersion,
)
from codeexec_kubernetes.api import KubeApi, KubeApiError, delete_run
from codeexec_kubernetes.catalog import find
from codeexec_kubernetes.isolation import isolation_gap
from codeexec_kubernetes.objects import (
    MANAGED,
    TOKEN_ANNOTATION,
    WORKER_LABEL,
    active_deadline_s,
    run_objects,
)
from codeexec_kubernetes.run import KubernetesRun
from codeexec_kubernetes.settings import KubernetesSettings, settings_from_env
from codeexec_kubernetes.sweeper import SELECTOR, Sweeper
from codeexec_kubernetes.watcher import PodWatcher

log = logging.getLogger(__name__)

QUOTA = "exceeded quota"
"""In the API server's 403 when a ResourceQuota is full (a wait, not a refusal)."""


async def configuration_for(settings: KubernetesSettings) -> client.Configuration:
    """In-cluster service account when there is no kubeconfig, else the kubeconfig."""
    configuration = client.Configuration()
    if settings.kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=configuration)
            return configuration
        except config.ConfigException:
            pass
    await config.load_kube_config(
        config_file=settings.kubeconfig,
        context=settings.context,
        client_configuration=configuration,
    )
    return configuration


def connections_for(settings: KubernetesSettings) -> int:
    """Every run holds a followed log stream and the watch one more: room for those plus the
    short calls, or creates would queue behind streams (the client's default is 100)."""
    return settings.concurrency + 16


class KubernetesSandbox(Sandbox):
    """Pods run on a cluster, not in this process, but this process reads their output:
    after a restart its runs are reported lost and the start sweep deletes their pods."""

    runs_survive_restart = False

    def __init__(
        self, settings: KubernetesSettings, configuration: client.Configuration | None = None
    ) -> None:
        """`configuration`: where and how to reach the API server; none: from the settings
        (KUBECONFIG, else in-cluster, else ~/.kube/config), loaded at `prepare`."""
        self.settings = settings
        self._configuration = configuration
        self._client: client.ApiClient | None = None
        self.api: KubeApi | None = None
        self.watcher: PodWatcher | None = None
        self.sweeper: Sweeper | None = None
        self.runs: dict[str, KubernetesRun] = {}
        self._claimed: set[str] = set()
        """Every id this process started: it never starts one twice."""
        self._holding: set[str] = set()
        """Ids of runs holding a slot: being created or running (the sweeper spares them)."""
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._ready: asyncio.Future[None] | None = None

    async def languages(self) -> Sequence[Language]:
        return [entry.language for entry in self.settings.catalog]

    def enforced_limits(self) -> Mapping[str, str]:
        return {
            "wall_time": "launcher in the pod; activeDeadlineSeconds",
            "cpu_time": "RLIMIT_CPU (launcher)",
            "memory": "container memory limit (cgroup)",
            "output": "launcher in the pod; the adapter",
            "file_size": "RLIMIT_FSIZE (launcher); emptyDir sizeLimit",
            "processes": "the kubelet's podPidsLimit (cluster setting)",
        }

    async def prepare(self) -> None:
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._connect())
        try:
            await asyncio.shield(self._ready)
        except Exception:
            self._ready = None
            raise

    async def _connect(self) -> None:
        try:
            configuration = self._configuration or await configuration_for(self.settings)
            configuration.connection_pool_maxsize = connections_for(self.settings)
            self._client = client.ApiClient(configuration)
            self.api = KubeApi(self._client, self.settings)
            await self._check_isolation()
            selector = f"{SELECTOR},{WORKER_LABEL}={self.settings.worker_id}"
            self.watcher = PodWatcher(self.api, selector)
            await self.watcher.start()
            self.sweeper = Sweeper(self.api, self.settings, lambda: self._holding)
            swept = await self.sweeper.sweep()
            if swept:
                log.warning("start sweep deleted %d objects of finished or unknown runs", swept)
            self.sweeper.start()
        except (KubeApiError, config.ConfigException, OSError) as error:
            raise SandboxUnavailable(f"kubernetes: {error}") from error

    async def _check_isolation(self) -> None:
        assert self.api is not None
        where = f"namespace {self.settings.namespace}"
        try:
            gap = isolation_gap(await self.api.network_policies(), MANAGED)
        except KubeApiError as error:
            if error.status != 403:
                raise
            gap = f"cannot list NetworkPolicies ({error.message})"
        if gap is None:
            return
        if self.settings.require_network_policy:
            raise SandboxUnavailable(
                f"kubernetes: {gap} in {where}; executor pods must have no network "
                "(apply deploy/kubernetes, or CODEEXEC_K8S_REQUIRE_NETWORK_POLICY=0 to run "
                "without)"
            )
        log.warning("executor pods may reach the network: %s in %s", gap, where)

    async def start(self, sandbox_id: str, spec: RunSpec) -> SandboxRun:
        image = find(self.settings.catalog, spec.language)
        if image is None:
            raise UnknownLanguage(f"language {spec.language!r} is not available")
        if spec.version is not None and not image.language.offers(spec.version):
            raise UnknownVersion(f"{image.name} {spec.version} is not available")
        if sandbox_id in self._claimed:
            raise SandboxAlreadyStarted(sandbox_id)
        token = secrets.token_hex(8)
        objects = run_objects(self.settings, image, sandbox_id, spec, token)
        await self.prepare()
        assert self.api is not None and self.watcher is not None
        self._claimed.add(sandbox_id)
        await self._slots.acquire()
        self._holding.add(sandbox_id)
        compiled = image.compile is not None
        run = KubernetesRun(
            sandbox_id,
            spec,
            self.api,
            self.settings,
            active_deadline_s(self.settings, spec, compiled),
            lambda: self._ended(sandbox_id),
            objects.names,
        )
        self.watcher.subscribe(sandbox_id, run.on_pod)
        head_is_ours = False
        try:
            head = await self._create("configmap", objects.config_map, token)
            head_is_ours = True
            uid = head["metadata"]["uid"]
            # The parts are created before the pod: the kubelet would not start it without
            # every ConfigMap of its projected volume.
            parts = objects.owned_parts(uid)
            created = await asyncio.gather(
                *(self._create("configmap", p, token) for p in parts), return_exceptions=True
            )
            for result in created:  # once none is in flight any more, so none is left over
                if isinstance(result, BaseException):
                    raise result
            run.on_pod("ADDED", await self._create("pod", objects.owned_pod(uid), token))
        except BaseException as error:
            self._ended(sandbox_id)
            if head_is_ours:
                # Every name of this run is this start's once its head is (what is there
                # without its token is left over): delete them all, those never created
                # answer 404, the head last. What fails is the sweeper's.
                pod = None if isinstance(error, SandboxAlreadyStarted) else sandbox_id
                await delete_run(self.api, sandbox_id, objects.names[1:], pod=pod)
            raise
        self.runs[sandbox_id] = run
        run.begin()
        return run

    async def _create(self, kind: str, body: dict[str, Any], token: str) -> dict[str, Any]:
        """Create once. A name that exists is a run started before (never run twice), unless
        it carries this very start's token (a retried create that had succeeded)."""
        assert self.api is not None
        name = body["metadata"]["name"]
        create = self.api.create_config_map if kind == "configmap" else self.api.create_pod
        give_up, pause = time.monotonic() + self.settings.start_timeout_s, 0.1
        while True:
            try:
                return await create(body)
            except KubeApiError as error:
                if error.status == 409:
                    break
                if error.status == 403 and QUOTA in error.message and time.monotonic() < give_up:
                    # The namespace's quota is full: a slot frees when some run ends.
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 2.0)
                    continue
                if error.status == 0 or error.status >= 500:
                    raise SandboxUnavailable(f"kubernetes: {error}") from error
                raise SandboxUnavailable(f"kubernetes refused the {kind}: {error}") from error
        existing = await self.api.read(kind, name)
        annotations = existing.get("metadata", {}).get("annotations") or {}
        if annotations.get(TOKEN_ANNOTATION) == token:
            return existing
        raise SandboxAlreadyStarted(f"the {kind} {name} already exists: started before")

    def _ended(self, sandbox_id: str) -> None:
        if self.watcher is not None:
            self.watcher.unsubscribe(sandbox_id)
        self.runs.pop(sandbox_id, None)
        if sandbox_id in self._holding:
            self._holding.discard(sandbox_id)
            self._slots.release()

    async def stop(self, sandbox_id: str) -> bool:
        run = self.runs.get(sandbox_id)
        if run is None or run.result_ready:
            return False
        await run.cancel()
        return True

    async def close(self) -> None:
        runs = list(self.runs.values())
        for run in runs:
            if not run.result_ready:
                await run.cancel()
        for run in runs:
            await run.finished()
        if self.sweeper is not None:
            await self.sweeper.close()
        if self.watcher is not None:
            await self.watcher.close()
        if self._client is not None:
            await self._client.close()


def sandbox_from_env(env: Mapping[str, str]) -> KubernetesSandbox:
    """The sandbox configured by CODEEXEC_K8S_* (and KUBECONFIG); nothing connects yet."""
    return KubernetesSandbox(settings_from_env(env))
