"""Talking to one ComfyUI server: its HTTP routes and its websocket, with one-sentence errors.

Studio only ever connects to the addresses the user typed (Settings or `--server`); every
request carries their bearer token when they gave one.
"""

from __future__ import annotations

import io
import json
import logging
import struct
from dataclasses import dataclass
from typing import Any

import aiohttp

from studio.runtime.remote.server import RemoteError, Server

log = logging.getLogger(__name__)

# Binary websocket frames start with a big-endian uint32 event type; previews then carry a
# uint32 image format (1 = JPEG, 2 = PNG) and the encoded image. Newer servers can also send
# previews with a JSON metadata block (event 4: uint32 length, JSON, then the image).
PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4


@dataclass(frozen=True)
class Message:
    """One websocket message: a JSON event (`type`, `data`) or a preview frame (`image`)."""

    type: str
    data: dict[str, Any]
    image: bytes | None = None


class Client:
    """One server's HTTP API and websocket, for the length of one job (one aiohttp session)."""

    def __init__(self, server: Server, *, connect_timeout: float = 10.0) -> None:
        self.server = server
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        self._session = aiohttp.ClientSession(
            headers=self.server.headers, timeout=self._timeout, trust_env=False
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use the client with 'async with'"
        return self._session

    # -- requests ------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        route: str,
        *,
        what: str,
        read: str = "json",
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        url = f"{self.server.url}{route}"
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with self.session.request(method, url, **kwargs) as response:
                if response.status in (401, 403):
                    raise RemoteError(
                        f"The server {self.server.name} refused Studio's token while {what}; "
                        "check the token in Settings (or --token)."
                    )
                if response.status == 413:
                    raise RemoteError(
                        f"The server {self.server.name} refused an upload as too large while "
                        f"{what} (ComfyUI limits uploads with --max-upload-size)."
                    )
                if response.status == 404 and route in ("/queue", "/object_info", "/prompt"):
                    raise RemoteError(
                        f"The server {self.server.name} does not look like ComfyUI ({route} is "
                        "not there); check the address."
                    )
                if response.status == 400 and route == "/prompt":
                    # The server checked the workflow and refused it; its answer says why.
                    raise RefusedPrompt(self.server, await _json_or_none(response) or {})
                if response.status >= 400:
                    raise RemoteError(
                        f"The server {self.server.name} answered {response.status} "
                        f"{response.reason or ''} while {what}.".replace(" .", ".")
                    )
                if read == "json":
                    return await response.json(content_type=None)
                if read == "bytes":
                    return await response.read()
                return None
        except RemoteError:
            raise
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as error:
            raise RemoteError(
                f"The server {self.server.name} is not reachable ({_reason(error)}); "
                "is ComfyUI running there, and is the address right?",
                lost=True,
            ) from error
        except (TimeoutError, aiohttp.ClientError, ValueError) as error:
            raise RemoteError(
                f"The server {self.server.name} failed while {what} ({_reason(error)}).",
                lost=isinstance(error, aiohttp.ClientConnectionError),
            ) from error

    async def object_info(self) -> dict[str, Any]:
        info = await self._request("GET", "/object_info", what="listing its nodes and models")
        if not isinstance(info, dict):
            raise RemoteError(f"The server {self.server.name} does not look like ComfyUI.")
        return info

    async def queue(self, timeout: float | None = None) -> dict[str, Any]:
        answer = await self._request("GET", "/queue", what="reading its queue", timeout=timeout)
        return answer if isinstance(answer, dict) else {}

    async def upload(self, image: Any, name: str, *, mask_of: str | None = None) -> str:
        """Upload a PIL image as PNG (a mask onto the uploaded image `mask_of`); its name there."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        form = aiohttp.FormData()
        form.add_field("image", buffer.getvalue(), filename=name, content_type="image/png")
        form.add_field("type", "input")
        form.add_field("overwrite", "true")
        route = "/upload/image"
        if mask_of is not None:
            route = "/upload/mask"
            reference = {"filename": mask_of, "subfolder": "", "type": "input"}
            form.add_field("original_ref", json.dumps(reference))
        answer = await self._request("POST", route, what="uploading the canvas", data=form)
        if not isinstance(answer, dict) or not isinstance(answer.get("name"), str):
            raise RemoteError(f"The server {self.server.name} did not accept the upload of {name}.")
        subfolder = answer.get("subfolder") or ""
        return f"{subfolder}/{answer['name']}" if subfolder else answer["name"]

    async def submit(self, prompt: dict[str, Any], client_id: str) -> str:
        """Queue an API-format workflow; its prompt id. Refusals come back as RemoteError."""
        # ComfyUI sends previews only when started with --preview-method, or when the job asks
        # for them: "auto" is its small preview decoder when installed, else a latent colour map.
        body = {
            "prompt": prompt,
            "client_id": client_id,
            "extra_data": {"preview_method": "auto"},
        }
        answer = await self._request("POST", "/prompt", what="queueing the job", json=body)
        prompt_id = answer.get("prompt_id") if isinstance(answer, dict) else None
        if not isinstance(prompt_id, str):
            raise RemoteError(f"The server {self.server.name} did not queue the job.")
        return prompt_id

    async def interrupt(self, prompt_id: str, timeout: float | None = None) -> None:
        # Servers that know prompt ids interrupt only ours; older ones the running job, ours.
        body = {"prompt_id": prompt_id}
        await self._request(
            "POST", "/interrupt", what="cancelling", read="none", json=body, timeout=timeout
        )

    async def delete_queued(self, prompt_ids: list[str], timeout: float | None = None) -> None:
        body = {"delete": prompt_ids}
        await self._request(
            "POST", "/queue", what="cancelling", read="none", json=body, timeout=timeout
        )

    async def history(self, prompt_id: str) -> dict[str, Any]:
        answer = await self._request("GET", f"/history/{prompt_id}", what="reading results")
        return answer.get(prompt_id, {}) if isinstance(answer, dict) else {}

    async def view(self, image: dict[str, Any]) -> bytes:
        params = {
            "filename": str(image.get("filename", "")),
            "subfolder": str(image.get("subfolder", "")),
            "type": str(image.get("type", "output")),
        }
        return await self._request(
            "GET", "/view", what="downloading a result", read="bytes", params=params
        )

    # -- the websocket -------------------------------------------------------------------------

    async def feed(self, client_id: str) -> Feed:
        """Open the websocket for `client_id`; open it before queueing so nothing is missed."""
        try:
            ws = await self.session.ws_connect(
                self.server.ws_url(client_id), heartbeat=None, max_msg_size=0
            )
        except aiohttp.WSServerHandshakeError as error:
            if error.status in (401, 403):
                raise RemoteError(
                    f"The server {self.server.name} refused Studio's token; "
                    "check the token in Settings (or --token)."
                ) from error
            raise RemoteError(
                f"The server {self.server.name} refused the progress connection ({error.status}).",
                lost=True,
            ) from error
        except (TimeoutError, aiohttp.ClientError) as error:
            raise RemoteError(
                f"The server {self.server.name} is not reachable ({_reason(error)}); "
                "is ComfyUI running there, and is the address right?",
                lost=True,
            ) from error
        return Feed(self.server, ws)


class Feed:
    """A server's websocket messages to one client id."""

    def __init__(self, server: Server, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.server = server
        self._ws = ws

    async def next(self, timeout: float) -> Message | None:
        """The next message; None if none came within `timeout` seconds."""
        while True:
            try:
                frame = await self._ws.receive(timeout=timeout)
            except TimeoutError:
                return None
            if frame.type == aiohttp.WSMsgType.TEXT:
                try:
                    payload = json.loads(frame.data)
                except ValueError:
                    continue
                if isinstance(payload, dict) and isinstance(payload.get("type"), str):
                    data = payload.get("data")
                    return Message(payload["type"], data if isinstance(data, dict) else {})
            elif frame.type == aiohttp.WSMsgType.BINARY:
                message = _preview(frame.data)
                if message is not None:
                    return message
            elif frame.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                raise RemoteError(
                    f"The server {self.server.name} dropped the connection during the job "
                    "(it may have restarted or stopped).",
                    lost=True,
                )

    async def close(self) -> None:
        await self._ws.close()


class RefusedPrompt(RemoteError):
    """The server's own validation refused the workflow (HTTP 400 from /prompt)."""

    def __init__(self, server: Server, answer: Any) -> None:
        answer = answer if isinstance(answer, dict) else {}
        self.answer = answer
        error = answer.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        details = error.get("details") if isinstance(error, dict) else ""
        node_errors = answer.get("node_errors")
        problems = []
        if isinstance(node_errors, dict):
            for entry in node_errors.values():
                for item in (entry or {}).get("errors", []) if isinstance(entry, dict) else []:
                    if isinstance(item, dict):
                        problems.append(str(item.get("details") or item.get("message") or ""))
        why = "; ".join(p for p in problems if p) or str(details or message or "no reason given")
        super().__init__(
            f"The server {server.name} refused the workflow: {why}.".replace("..", ".")
        )


def _preview(data: bytes) -> Message | None:
    if len(data) < 8:
        return None
    (event,) = struct.unpack(">I", data[:4])
    if event == PREVIEW_IMAGE:
        return Message("preview", {}, bytes(data[8:]))
    if event == PREVIEW_IMAGE_WITH_METADATA:
        (length,) = struct.unpack(">I", data[4:8])
        try:
            meta = json.loads(data[8 : 8 + length])
        except ValueError:
            meta = {}
        return Message("preview", meta if isinstance(meta, dict) else {}, bytes(data[8 + length :]))
    return None


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text or type(error).__name__
