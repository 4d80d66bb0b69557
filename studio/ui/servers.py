"""Switching the window between this computer and the user's ComfyUI servers."""

from __future__ import annotations

from typing import Any

from studio.runtime.remote.backend import servers_or_problem


def apply_servers(window: Any, settings: Any) -> None:
    """Run the window's next jobs where `settings` say, and list the servers' models."""
    servers, problem = servers_or_problem(settings)
    if problem:
        window.show_message(problem)
    if window.bridge.use_servers(servers):
        where = ", ".join(s.name for s in servers) or "this computer"
        window.statusBar().showMessage(f"The next job runs on {where}.", 6000)
    else:
        window.show_message("A job is running: the new servers are used after a restart.")
    window.models.scan_servers(servers)


# The servers' model files as last listed, for every list in the window that offers files:
# kind ("checkpoints", "loras", "upscale_models") -> [(file name on the server, label)].
_listed: dict[str, list[tuple[str, str]]] = {}


def list_server_files(servers: list[Any]) -> dict[str, list[tuple[str, str]]]:
    """Each kind of model file the servers have, labelled "NAME (on SERVER)". Blocking: call it
    off the GUI thread."""
    from studio.runtime.remote.pool import ServerPool

    where: dict[str, dict[str, list[str]]] = {}
    for server, kinds in ServerPool(servers, connect_timeout=5.0).models().items():
        for kind, names in kinds.items():
            for name in names:
                where.setdefault(kind, {}).setdefault(name, []).append(server)
    return {
        kind: [(name, f"{name} (on {', '.join(found)})") for name, found in names.items()]
        for kind, names in where.items()
    }


def remember_server_files(found: dict[str, list[tuple[str, str]]]) -> None:
    global _listed
    _listed = dict(found)


def server_files(kind: str) -> list[tuple[str, str]]:
    """The servers' files of one kind as last listed (empty when jobs run on this computer)."""
    return list(_listed.get(kind, []))
