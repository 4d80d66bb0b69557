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
