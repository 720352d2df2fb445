"""codeexec-server: the HTTP API, event streams, web page and CLI around the codeexec runtime."""

from codeexec_server.app import create_app
from codeexec_server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
