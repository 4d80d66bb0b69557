"""The servers the user named: which are up and least busy, and what models each one has."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from studio.runtime.remote.client import Client
from studio.runtime.remote.server import RemoteError, Server

log = logging.getLogger(__name__)

# ComfyUI inputs that name a model file, and what the user calls that kind of file.
MODEL_INPUTS = {
    "ckpt_name": "checkpoint",
    "lora_name": "LoRA",
    "model_name": "upscale model",
    "vae_name": "VAE",
}
# Where /object_info lists each kind: (node class, input).
MODEL_LISTS = {
    "checkpoints": ("CheckpointLoaderSimple", "ckpt_name"),
    "loras": ("LoraLoader", "lora_name"),
    "upscale_models": ("UpscaleModelLoader", "model_name"),
}


@dataclass(frozen=True)
class Ranked:
    client: Client
    load: int  # jobs running or waiting there (anyone's)


class ServerPool:
    """The user's servers; remembers each one's /object_info for the life of the pool."""

    def __init__(self, servers: Sequence[Server], *, connect_timeout: float = 10.0) -> None:
        if not servers:
            raise RemoteError("No ComfyUI server is set; add one in Settings or with --server.")
        self.servers = list(servers)
        self.connect_timeout = connect_timeout
        self._info: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        # (server url, file name) -> the name the server stored it under, for files named by
        # their content: the same canvas is uploaded once.
        self.uploads: dict[tuple[str, str], str] = {}

    def forget_uploads(self, server: Server) -> None:
        for key in [k for k in self.uploads if k[0] == server.url]:
            del self.uploads[key]

    async def rank(self, clients: Sequence[Client]) -> list[Ranked]:
        """The servers that answer, least busy first; RemoteError if none does."""

        async def load(client: Client) -> Ranked | RemoteError:
            try:
                queue = await client.queue(timeout=self.connect_timeout)
            except RemoteError as error:
                return error
            running = queue.get("queue_running") or []
            pending = queue.get("queue_pending") or []
            return Ranked(client, len(running) + len(pending))

        answers = await asyncio.gather(*(load(c) for c in clients))
        up = [a for a in answers if isinstance(a, Ranked)]
        if up:
            for answer in answers:
                if isinstance(answer, RemoteError):
                    log.warning("Leaving out a server: %s", answer)
            return sorted(up, key=lambda r: r.load)
        errors = [a for a in answers if isinstance(a, RemoteError)]
        if len(errors) == 1:
            raise errors[0]
        raise RemoteError(
            "None of the ComfyUI servers answers: "
            + "; ".join(str(e).rstrip(".") for e in errors)
            + "."
        )

    async def info(self, client: Client, *, refresh: bool = False) -> dict[str, Any]:
        with self._lock:
            known = None if refresh else self._info.get(client.server.url)
        if known is not None:
            return known
        info = await client.object_info()
        with self._lock:
            self._info[client.server.url] = info
        return info

    def models(self) -> dict[str, dict[str, list[str]]]:
        """Each server's checkpoints, LoRAs and upscale models (server name -> kind -> files);
        servers that do not answer are left out. Blocking: call it off the GUI thread."""

        async def gather() -> dict[str, dict[str, list[str]]]:
            found: dict[str, dict[str, list[str]]] = {}
            for server in self.servers:
                async with Client(server, connect_timeout=self.connect_timeout) as client:
                    try:
                        info = await self.info(client, refresh=True)
                    except RemoteError as error:
                        log.warning("Cannot list the models of %s: %s", server.name, error)
                        continue
                found[server.name] = model_lists(info)
            return found

        return asyncio.run(gather())


def model_lists(info: dict[str, Any]) -> dict[str, list[str]]:
    return {
        kind: list(options(info, class_type, name) or [])
        for kind, (class_type, name) in MODEL_LISTS.items()
    }


def options(info: dict[str, Any], class_type: str, name: str) -> list[str] | None:
    """The choices a server offers for one input of one node class, if it is a list."""
    node = info.get(class_type)
    spec = node.get("input") if isinstance(node, dict) else None
    if not isinstance(spec, dict):
        return None
    for section in ("required", "optional"):
        entry = (spec.get(section) or {}).get(name)
        if not isinstance(entry, list | tuple) or not entry:
            continue
        first = entry[0]
        if isinstance(first, list):
            return [str(x) for x in first]
        # Newer servers: ["COMBO", {"options": [...]}].
        if first == "COMBO" and len(entry) > 1 and isinstance(entry[1], dict):
            return [str(x) for x in entry[1].get("options") or []]
    return None


def match_name(wanted: str, choices: Sequence[str]) -> str | None:
    """The server's file for a model the user chose here: same name, in any subfolder, with any
    letter case, or the same name with another extension."""
    if wanted in choices:
        return wanted

    def base(name: str) -> str:
        return re.split(r"[\\/]", name)[-1].lower()

    def stem(name: str) -> str:
        return base(name).rsplit(".", 1)[0] if "." in base(name) else base(name)

    for key in (base, stem):
        target = key(wanted)
        found = [c for c in choices if key(c) == target]
        if found:
            return sorted(found, key=len)[0]
    return None


def fit(
    prompt: dict[str, dict[str, Any]],
    info: dict[str, Any],
    server: Server,
    studio_ids: dict[str, str],
) -> dict[str, str]:
    """Check an API workflow against what the server has, and map model names to its files
    (in place). Returns the models chosen (input -> server file); RemoteError names what is
    missing, and the Studio node to blame."""
    chosen: dict[str, str] = {}
    for comfy_id, entry in prompt.items():
        class_type = entry["class_type"]
        node_id = studio_ids.get(comfy_id) or _consumer(prompt, comfy_id, studio_ids)
        if class_type not in info:
            raise RemoteError(
                f"The server {server.name} does not know the node type {class_type}; its "
                "ComfyUI may be older than this feature, or the node is not installed there.",
                node_id,
            )
        if class_type == "LoadImage":
            continue  # the choices are the server's input files, which Studio just uploaded
        for key, value in entry["inputs"].items():
            if not isinstance(value, str):
                continue
            choices = options(info, class_type, key)
            if choices is None or value in choices:
                chosen.setdefault(key, value)
                continue
            found = match_name(value, choices)
            if found is not None:
                entry["inputs"][key] = found
                chosen.setdefault(key, found)
                continue
            if key in MODEL_INPUTS:
                kind = MODEL_INPUTS[key]
                listed = ", ".join(choices[:8]) + (", ..." if len(choices) > 8 else "")
                what = f"named '{value}'" if value else "chosen"
                has = f"it has {listed}" if choices else f"it has no {kind} at all"
                local = (
                    " (Studio's built-in model runs only on this computer)"
                    if not value or ("studio-shapes" in value)
                    else ""
                )
                raise RemoteError(
                    f"The server {server.name} has no {kind} {what}{local}; {has}.", node_id
                )
            raise RemoteError(
                f"The server {server.name} does not accept '{value}' for {key} of {class_type}.",
                node_id,
            )
    return chosen


def _consumer(prompt: dict[str, Any], comfy_id: str, studio_ids: dict[str, str]) -> str | None:
    """The Studio node behind a node the exporter added (a guidance patch): the one it feeds."""
    for other, entry in prompt.items():
        for value in entry["inputs"].values():
            if isinstance(value, list) and value and str(value[0]) == comfy_id:
                return studio_ids.get(other) or _consumer(prompt, other, studio_ids)
    return None


def describe_servers(urls: Sequence[str], token: str = "", timeout: float = 5.0) -> str:
    """One line a server: whether it answers, how busy it is, what it has (Settings' Check)."""

    async def one(url: str) -> str:
        try:
            server = Server.parse(url, token)
        except RemoteError as error:
            return str(error)
        async with Client(server, connect_timeout=timeout) as client:
            try:
                queue = await client.queue(timeout=timeout)
                models = model_lists(await client.object_info())
            except RemoteError as error:
                return str(error)
        waiting = len(queue.get("queue_running") or []) + len(queue.get("queue_pending") or [])
        return (
            f"{server.name}: answers; {waiting} job(s) queued; "
            f"{len(models['checkpoints'])} checkpoint(s), {len(models['loras'])} LoRA(s), "
            f"{len(models['upscale_models'])} upscale model(s)."
        )

    async def every() -> list[str]:
        return list(await asyncio.gather(*(one(u) for u in urls)))

    return "\n".join(asyncio.run(every()))
