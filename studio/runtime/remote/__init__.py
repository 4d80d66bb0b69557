"""Running workflows on ComfyUI servers: the client, the server pool and the remote executor.

Importing this package imports neither torch nor Qt.
"""

from __future__ import annotations

from studio.runtime.remote.client import RemoteError, Server
from studio.runtime.remote.executor import RemoteExecutor
from studio.runtime.remote.pool import ServerPool

__all__ = ["RemoteError", "RemoteExecutor", "Server", "ServerPool"]
