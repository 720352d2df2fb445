"""codeexec-server: the HTTP API, event streams, web page and CLI around the codeexec runtime."""

from __future__ import annotations

from typing import Any

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so the CLI starts without importing the web stack.
    if name == "create_app":
        from codeexec_server.app import create_app

        return create_app
    if name == "ServerSettings":
        from codeexec_server.settings import ServerSettings

        return ServerSettings
    raise AttributeError(name)
