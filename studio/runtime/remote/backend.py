"""Which executor runs jobs: this computer (the default) or the user's ComfyUI servers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from studio.runtime.remote.server import RemoteError, Server

LOCAL = "local"
COMFYUI = "comfyui"
# A token from the environment keeps it out of the shell's history and the settings file.
TOKEN_VARIABLE = "STUDIO_COMFYUI_TOKEN"


def servers_from(urls: Sequence[str], tokens: Sequence[str] = ()) -> list[Server]:
    """Servers from `--server URL` options; `--token` options pair with them in order, and one
    token (or $STUDIO_COMFYUI_TOKEN) goes to every server."""
    tokens = list(tokens)
    if not tokens and os.environ.get(TOKEN_VARIABLE):
        tokens = [os.environ[TOKEN_VARIABLE]]
    if len(tokens) > 1 and len(tokens) != len(urls):
        raise RemoteError(
            f"Give one --token for all servers or one per --server ({len(urls)} servers, "
            f"{len(tokens)} tokens)."
        )
    servers = []
    for index, url in enumerate(urls):
        token = tokens[index] if len(tokens) > 1 else (tokens[0] if tokens else "")
        server = Server.parse(url, token)
        if server not in servers:
            servers.append(server)
    return servers


def servers_in_settings(settings: Any) -> list[Server]:
    """The servers Settings names, when its backend is ComfyUI; empty for this computer."""
    if getattr(settings, "backend", LOCAL) != COMFYUI:
        return []
    tokens = getattr(settings, "server_tokens", None) or {}
    servers = []
    for url in getattr(settings, "servers", None) or []:
        if isinstance(url, str) and url.strip():
            token = tokens.get(url) if isinstance(tokens, dict) else ""
            servers.append(Server.parse(url, str(token or os.environ.get(TOKEN_VARIABLE, ""))))
    if not servers:
        raise RemoteError(
            "Settings say to run on ComfyUI servers but name none; add one or choose "
            "'This computer'."
        )
    return servers


def make_executor(servers: Sequence[Server], **options: Any) -> Any:
    """The remote executor for `servers`, or None (the local one) when there are none."""
    if not servers:
        return None
    from studio.runtime.remote.executor import RemoteExecutor

    return RemoteExecutor(servers, **options)


def servers_or_problem(settings: Any) -> tuple[list[Server], str]:
    """The servers Settings name, or none and the sentence that says why (the window then runs
    jobs on this computer)."""
    try:
        return servers_in_settings(settings), ""
    except RemoteError as error:
        return [], f"{error} Jobs run on this computer."
