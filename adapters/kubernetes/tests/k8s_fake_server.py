"""The fake API server and its kubelet as a process of their own, for tests of several
processes (the system test): `python k8s_fake_server.py` prints its URL, serves until SIGTERM.

Every pod runs its launcher as a local process; `GET /fake/objects` lists what exists."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))

from k8s_fake_api import FakeKube
from k8s_fake_kubelet import FakeKubelet


async def serve() -> None:
    kube = FakeKube()
    kubelet = FakeKubelet(kube)

    async def objects(request: web.Request) -> web.Response:
        return web.json_response({"pods": kube.pods(), "configmaps": kube.config_maps()})

    kube.extra_routes.append(("GET", "/fake/objects", objects))
    await kube.start()
    print(kube.url, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await kubelet.close()
    await kube.close()


if __name__ == "__main__":
    asyncio.run(serve())
