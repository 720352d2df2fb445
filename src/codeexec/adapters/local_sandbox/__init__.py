"""The local sandbox adapter: untrusted code in bubblewrap boxes, limits enforced from outside."""

from codeexec.adapters.local_sandbox.bubblewrap import INSTALL_HINT, BubblewrapSandbox
from codeexec.adapters.local_sandbox.languages import detect_toolchains

__all__ = ["INSTALL_HINT", "BubblewrapSandbox", "detect_toolchains"]
