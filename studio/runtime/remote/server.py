"""A ComfyUI server as the user named it, and the error for what goes wrong with one.

No network code here (and no aiohttp import), so the window can read its settings cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from studio.errors import StudioError


class RemoteError(StudioError):
    """A ComfyUI server could not do what the job needed; str() is one sentence for the user."""

    def __init__(self, message: str, node_id: str | None = None, *, lost: bool = False) -> None:
        super().__init__(message)
        self.node_id = node_id  # the Studio node to highlight, when one is to blame
        # The server went away (refused, dropped, restarted): the work may go to another one.
        self.lost = lost


@dataclass(frozen=True)
class Server:
    """A ComfyUI server the user named: its base URL and an optional bearer token."""

    url: str
    token: str = ""

    @classmethod
    def parse(cls, text: str, token: str = "") -> Server:
        """A server from what the user typed ("http://host:8188", "host:8188")."""
        raw = (text or "").strip()
        if raw and "://" not in raw:
            raw = f"http://{raw}"
        parts = urlsplit(raw)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
            raise RemoteError(
                f"'{text}' is not a ComfyUI server address; write it like http://192.168.1.20:8188."
            )
        path = parts.path.rstrip("/")
        return cls(f"{parts.scheme}://{parts.netloc}{path}", (token or "").strip())

    @property
    def name(self) -> str:
        """How the user sees this server: host and port."""
        return urlsplit(self.url).netloc or self.url

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def ws_url(self, client_id: str) -> str:
        scheme = "wss" if self.url.startswith("https:") else "ws"
        return f"{scheme}{self.url[self.url.index(':') :]}/ws?clientId={client_id}"
