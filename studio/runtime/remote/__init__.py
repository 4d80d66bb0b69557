"""Running workflows on ComfyUI servers: the client, the server pool and the remote executor.

Importing this package imports neither torch nor Qt, nor aiohttp until the executor is used.
"""

from __future__ import annotations

from typing import Any

from studio.runtime.remote.server import RemoteError, Server

__all__ = ["RemoteError", "RemoteExecutor", "Server", "ServerPool"]


def __getattr__(name: str) -> Any:
    if name == "RemoteExecutor":
        from studio.runtime.remote.executor import RemoteExecutor

        return RemoteExecutor
    if name == "ServerPool":
        from studio.runtime.remote.pool import ServerPool

        return ServerPool
    raise AttributeError(name)
