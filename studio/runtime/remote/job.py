"""One job's server part: upload, queue, follow the websocket, download; spread over servers.

The images of a batch become one ComfyUI prompt each (batch size 1, seed + i, as Studio numbers
a batch), spread over the servers that answer, least busy first. A server that drops out has its
unfinished images queued on another one (or on itself once it answers again), once.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from studio.errors import Cancelled
from studio.graph.document import Graph
from studio.graph.spec import IMAGE, MASK
from studio.nodes.context import RunContext
from studio.runtime.events import (
    Event,
    NodeCached,
    NodeFinished,
    NodeStarted,
    Notice,
    Preview,
    Progress,
)
from studio.runtime.remote.client import Client, Feed, RefusedPrompt
from studio.runtime.remote.pool import fit
from studio.runtime.remote.record import Made, generation_params
from studio.runtime.remote.server import RemoteError
from studio.runtime.remote.split import Split, server_graph

if TYPE_CHECKING:
    from PIL import Image

    from studio.runtime.remote.executor import RemoteExecutor

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.01
RESTART_POLL_S = 0.25
STOP_TIMEOUT_S = 2.0


@dataclass
class _Prompt:
    """One image of the batch, queued on one server."""

    index: int
    client: Client
    studio_ids: dict[str, str]  # ComfyUI node id -> Studio node id
    saves: dict[str, str]  # ComfyUI id of a Save image node -> part output port
    models: dict[str, str]
    running: bool = False
    done: bool = False
    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class RemoteJob:
    """Runs the server's part of one job; `run` is the part node's run function."""

    def __init__(
        self,
        executor: RemoteExecutor,
        graph: Graph,
        part: Split,
        ctx: RunContext,
        emit: Callable[[Event], None],
        job_id: str,
    ) -> None:
        self.executor = executor
        self.pool = executor.pool
        self.graph = graph
        self.part = part
        self.emit = emit
        self.job_id = job_id
        self.ctx = ctx
        self.count = max(
            [
                int(graph.nodes[i].params.get("batch_size", 1))
                for i in part.remote
                if graph.nodes[i].type == "EmptyLatent"
            ]
            or [1]
        )
        self.tag = uuid.uuid4().hex[:12]
        self.prompts: dict[str, _Prompt] = {}
        self.results: dict[int, tuple[_Prompt, dict[str, Image.Image]]] = {}
        self.started: dict[str, float] = {}
        self.done: set[str] = set()  # Studio nodes reported finished
        self.steps: dict[str, dict[str, int]] = {}  # Studio node -> prompt id -> steps done
        self.current: dict[str, str] = {}  # server url -> Studio node running there
        self.stopping = False
        self.values: dict[str, Any] = {}
        self.reused_uploads = False

    # -- the part node ---------------------------------------------------------------------------

    def run(self, ctx: RunContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict:
        images = {
            c.port: _upload_image(c.type, inputs[c.port])
            for c in self.part.inputs
            if c.type in (IMAGE, MASK)
        }
        self.values = {c.port: inputs.get(c.port) for c in self.part.inputs}
        self.results.clear()
        asyncio.run(self._run(images))
        for node_id in list(self.started):
            self._finished(node_id)
        outputs: dict[str, tuple] = {}
        for crossing in self.part.outputs:
            outputs[crossing.port] = tuple(
                self._picture(index, crossing.port) for index in range(self.count)
            )
        return outputs

    async def _run(self, images: dict[str, Image.Image]) -> None:
        async with AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    Client(s, connect_timeout=self.pool.connect_timeout)
                )
                for s in self.pool.servers
            ]
            work = asyncio.create_task(self._work(clients, images))
            cancel = asyncio.create_task(self._cancelled())
            done, _ = await asyncio.wait({work, cancel}, return_when=asyncio.FIRST_COMPLETED)
            if work in done:
                cancel.cancel()
                try:
                    work.result()
                except BaseException:
                    await self._stop()
                    raise
                return
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            await self._stop()
            raise Cancelled()

    async def _cancelled(self) -> None:
        while not self.ctx.cancel.cancelled:
            await asyncio.sleep(CANCEL_POLL_S)

    async def _stop(self) -> None:
        """Interrupt our running prompts and take our queued ones off the servers' queues."""
        self.stopping = True
        calls = []
        for prompt_id, prompt in self.prompts.items():
            if prompt.done:
                continue
            if prompt.running:
                calls.append(prompt.client.interrupt(prompt_id, timeout=STOP_TIMEOUT_S))
            else:
                calls.append(prompt.client.delete_queued([prompt_id], timeout=STOP_TIMEOUT_S))
        for outcome in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("Could not stop a prompt on its server: %s", outcome)

    # -- spreading the batch ---------------------------------------------------------------------

    async def _work(self, clients: list[Client], images: dict[str, Image.Image]) -> None:
        ranked = await self.pool.rank(clients)
        load = {r.client.server.url: r.load for r in ranked}
        plan: dict[str, list[int]] = {r.client.server.url: [] for r in ranked}
        by_url = {r.client.server.url: r.client for r in ranked}
        for index in range(self.count):
            url = min(plan, key=lambda u: (load[u] + len(plan[u]), list(plan).index(u)))
            plan[url].append(index)
        tasks = {
            asyncio.create_task(self._serve(by_url[url], indices, images)): (by_url[url], indices)
            for url, indices in plan.items()
            if indices
        }
        moved: set[int] = set()
        lost: set[str] = set()
        try:
            while tasks:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    client, indices = tasks.pop(task)
                    error = task.exception()
                    if error is None:
                        continue
                    if not isinstance(error, RemoteError) or not error.lost:
                        raise error
                    left = [i for i in indices if i not in self.results]
                    if not left:
                        continue
                    if moved.intersection(left):
                        raise error
                    lost.add(client.server.url)
                    target = await self._replacement(clients, lost, client, error)
                    moved.update(left)
                    self._forget(client, left)
                    if target is client:
                        said = f"The server {client.server.name} restarted during the job; the "
                        said += "job was queued there again."
                    else:
                        said = f"The server {client.server.name} dropped out during the job; its "
                        said += f"work went to {target.server.name}."
                    self.emit(Notice(self.job_id, said))
                    task = asyncio.create_task(self._serve(target, left, images))
                    tasks[task] = (target, left)
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _replacement(
        self, clients: list[Client], lost: set[str], dropped: Client, error: RemoteError
    ) -> Client:
        """The least busy server that still answers, other than those that dropped out; else
        the dropped one, if it answers again within the restart grace (a restart)."""
        others = [c for c in clients if c.server.url not in lost]
        if others:
            try:
                return (await self.pool.rank(others))[0].client
            except RemoteError:
                pass
        deadline = time.monotonic() + self.executor.restart_grace
        while True:
            try:
                return (await self.pool.rank([dropped]))[0].client
            except RemoteError:
                if time.monotonic() >= deadline:
                    break
            await asyncio.sleep(RESTART_POLL_S)
        raise RemoteError(
            f"{str(error).rstrip('.')}, and no other server could take the job over.",
            error.node_id,
        )

    def _forget(self, client: Client, indices: list[int]) -> None:
        for prompt_id, prompt in list(self.prompts.items()):
            if prompt.client is client and prompt.index in indices:
                del self.prompts[prompt_id]
                for steps in self.steps.values():
                    steps.pop(prompt_id, None)

    # -- one server ------------------------------------------------------------------------------

    async def _serve(self, client: Client, indices: list[int], images: dict) -> None:
        from studio.nodes.comfyui_export import export_comfyui

        info = await self.pool.info(client)
        client_id = f"studio-{uuid.uuid4().hex}"
        feed = await client.feed(client_id)
        try:
            names = await self._upload(client, images)
            mine: set[str] = set()
            for index in indices:
                sub, studio_ids, saves = server_graph(
                    self.graph, self.part, names, self.values, index
                )
                prompt = export_comfyui(sub)
                try:
                    models = fit(prompt, info, client.server, studio_ids)
                except RemoteError:
                    # A model added since the list was read: read it again before giving up.
                    info = await self.pool.info(client, refresh=True)
                    models = fit(prompt, info, client.server, studio_ids)
                try:
                    prompt_id = await client.submit(prompt, client_id)
                except RefusedPrompt:
                    if not self.reused_uploads:
                        raise
                    # Its input folder was emptied (a fresh container, say): upload again.
                    self.pool.forget_uploads(client.server)
                    self.reused_uploads = False
                    names = await self._upload(client, images)
                    sub, studio_ids, saves = server_graph(
                        self.graph, self.part, names, self.values, index
                    )
                    prompt = export_comfyui(sub)
                    models = fit(prompt, info, client.server, studio_ids)
                    prompt_id = await client.submit(prompt, client_id)
                self.prompts[prompt_id] = _Prompt(index, client, studio_ids, saves, models)
                mine.add(prompt_id)
            await self._follow(client, feed, mine)
        finally:
            await feed.close()

    async def _upload(self, client: Client, images: dict[str, Image.Image]) -> dict[str, str]:
        """Send the canvas image and mask; files are named by their content, and what a server
        already has (a new seed on the same canvas) is not sent again."""
        from PIL import Image

        names: dict[str, str] = {}
        pictures = {c.port: images[c.port] for c in self.part.inputs if c.type == IMAGE}
        for port, image in pictures.items():
            names[port] = await self._send(client, image, f"studio-{_digest(image)}.png")
        for crossing in self.part.inputs:
            if crossing.type != MASK:
                continue
            mask = images[crossing.port]
            base = next((p for p, i in pictures.items() if i.size == mask.size), None)
            if base is None:
                base = f"{crossing.port}-base"
                blank = Image.new("RGB", mask.size)
                names[base] = await self._send(client, blank, f"studio-{_digest(blank)}.png")
            # ComfyUI's Load image reads its mask as 1 - alpha: white (repaint) = transparent.
            layer = Image.new("RGBA", mask.size)
            layer.putalpha(mask.point(lambda v: 255 - v))
            name = f"studio-{_digest(mask)}-on-{names[base].rsplit('.', 1)[0][-8:]}.png"
            names[crossing.port] = await self._send(client, layer, name, mask_of=names[base])
        return names

    async def _send(
        self, client: Client, image: Image.Image, name: str, mask_of: str | None = None
    ) -> str:
        key = (client.server.url, name)
        known = self.pool.uploads.get(key)
        if known is not None:
            self.reused_uploads = True
            return known
        stored = await client.upload(image, name, mask_of=mask_of)
        self.pool.uploads[key] = stored
        return stored

    async def _follow(self, client: Client, feed: Feed, mine: set[str]) -> None:
        left = set(mine)
        while left:
            message = await feed.next(self.executor.idle_timeout)
            if message is None:
                await self._silence(client, left)
                continue
            data = message.data
            if message.type == "preview":
                self._preview(client, message.image)
                continue
            prompt_id = data.get("prompt_id")
            prompt = self.prompts.get(prompt_id) if prompt_id in left else None
            if prompt is None:
                continue  # someone else's job on the same server, or the server's status
            kind = message.type
            if kind == "execution_start":
                prompt.running = True
            elif kind == "execution_cached":
                for node in data.get("nodes") or []:
                    studio = prompt.studio_ids.get(str(node))
                    if studio is not None and studio not in self.started:
                        self.emit(NodeCached(self.job_id, studio))
            elif kind == "executing":
                node = data.get("node")
                if node is None:
                    await self._finish(prompt_id, prompt)
                    left.discard(prompt_id)
                else:
                    self._start(client, prompt, str(node))
            elif kind == "progress":
                self._progress(client, prompt_id, prompt, data)
            elif kind == "executed":
                node, output = str(data.get("node")), data.get("output") or {}
                if node in prompt.saves and isinstance(output, dict):
                    prompt.outputs.setdefault(node, []).extend(output.get("images") or [])
            elif kind == "execution_success":
                await self._finish(prompt_id, prompt)
                left.discard(prompt_id)
            elif kind == "execution_error":
                raise _execution_error(client, prompt, data)
            elif kind == "execution_interrupted" and not self.stopping:
                raise RemoteError(
                    f"The job was interrupted on the server {client.server.name} "
                    "(someone cancelled it there)."
                )

    async def _silence(self, client: Client, left: set[str]) -> None:
        """Nothing came for a while: fine while ours wait behind other jobs, not while one runs."""
        name, seconds = client.server.name, self.executor.idle_timeout
        if any(self.prompts[p].running for p in left):
            raise RemoteError(
                f"The server {name} sent nothing for {seconds:g} s while running the job, so "
                "Studio stopped waiting (it may be stuck, or loading a very large model)."
            )
        queue = await client.queue(timeout=self.pool.connect_timeout)
        listed = {
            item[1]
            for key in ("queue_running", "queue_pending")
            for item in queue.get(key) or []
            if isinstance(item, list) and len(item) > 1
        }
        for prompt_id in sorted(left - listed):
            # Not queued any more: finished unseen, or lost with a restart.
            prompt = self.prompts[prompt_id]
            record = await client.history(prompt_id)
            if not record:
                raise RemoteError(
                    f"The server {name} no longer knows the job (it may have restarted).",
                    lost=True,
                )
            for node, output in (record.get("outputs") or {}).items():
                if node in prompt.saves and isinstance(output, dict):
                    prompt.outputs[node] = list(output.get("images") or [])
            await self._finish(prompt_id, prompt)
            left.discard(prompt_id)

    async def _finish(self, prompt_id: str, prompt: _Prompt) -> None:
        if prompt.done:
            return
        from PIL import Image

        if set(prompt.saves) - set(prompt.outputs):
            # Results of cached nodes are not always announced again: ask the history.
            record = await prompt.client.history(prompt_id)
            for node, output in (record.get("outputs") or {}).items():
                if node in prompt.saves and isinstance(output, dict):
                    prompt.outputs[node] = list(output.get("images") or [])
        pictures: dict[str, Image.Image] = {}
        for node, port in prompt.saves.items():
            found = prompt.outputs.get(node) or []
            if not found:
                raise RemoteError(
                    f"The server {prompt.client.server.name} finished the job without an image."
                )
            data = await prompt.client.view(found[0])
            try:
                with Image.open(io.BytesIO(data)) as image:
                    pictures[port] = image.convert("RGB")
            except OSError as error:
                raise RemoteError(
                    f"The server {prompt.client.server.name} sent a result that is not an image."
                ) from error
        prompt.done = True
        prompt.running = False
        self.results[prompt.index] = (prompt, pictures)

    # -- events ----------------------------------------------------------------------------------

    def _start(self, client: Client, prompt: _Prompt, comfy_node: str) -> None:
        studio = prompt.studio_ids.get(comfy_node)
        if studio is None:
            return  # a node the exporter added (a guidance patch) or a loader/saver of ours
        previous = self.current.get(client.server.url)
        self.current[client.server.url] = studio
        if previous is not None and previous != studio and self.count == 1:
            self._finished(previous)  # one image: a node is done when the server moves on
        if studio in self.started:
            return
        self.started[studio] = time.perf_counter()
        node = self.graph.nodes[studio]
        spec = self.executor.node_types[node.type].spec
        self.emit(NodeStarted(self.job_id, studio, node.title or spec.title))

    def _finished(self, node_id: str) -> None:
        if node_id in self.started and node_id not in self.done:
            self.done.add(node_id)
            self.emit(
                NodeFinished(self.job_id, node_id, time.perf_counter() - self.started[node_id])
            )

    def _progress(self, client: Client, prompt_id: str, prompt: _Prompt, data: dict) -> None:
        studio = prompt.studio_ids.get(str(data.get("node"))) or self.current.get(client.server.url)
        value, total = data.get("value"), data.get("max")
        if studio is None or not isinstance(value, int) or not isinstance(total, int):
            return
        if studio not in self.started:
            self._start(client, prompt, str(data.get("node")))
        self.current[client.server.url] = studio
        steps = self.steps.setdefault(studio, {})
        steps[prompt_id] = value
        self.emit(Progress(self.job_id, studio, sum(steps.values()), total * self.count))

    def _preview(self, client: Client, data: bytes | None) -> None:
        studio = self.current.get(client.server.url)
        if studio is None or not data:
            return
        import numpy as np
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as image:
                frame = np.asarray(image.convert("RGB"))
        except OSError:
            return
        self.emit(Preview(self.job_id, studio, frame))

    # -- results ---------------------------------------------------------------------------------

    def _picture(self, index: int, port: str) -> Any:
        from studio.nodes.values import Picture

        prompt, pictures = self.results[index]
        image = pictures[port]
        made = Made(prompt.client.server.url, prompt.index, self.count, prompt.models)
        return Picture(image, generation_params(self.graph, self.part.remote, made, image.size))


def _upload_image(port_type: str, value: Any) -> Any:
    if port_type == IMAGE:
        return value[0].image.convert("RGB")
    return value.convert("L")


def _execution_error(client: Client, prompt: _Prompt, data: dict) -> RemoteError:
    node = str(data.get("node_id"))
    studio = prompt.studio_ids.get(node)
    kind = str(data.get("exception_type") or "")
    detail = str(data.get("exception_message") or "").strip().splitlines()
    what = f"node {data.get('node_type') or node}"
    if "OutOfMemory" in kind or "out of memory" in " ".join(detail).lower():
        return RemoteError(
            f"The server {client.server.name} ran out of GPU memory in {what}; try a smaller "
            "size or fewer images.",
            studio,
        )
    reason = detail[0].rstrip(".") if detail else kind or "no reason given"
    return RemoteError(f"The server {client.server.name} failed in {what}: {reason}.", studio)


def _digest(image: Any) -> str:
    """A short name for an image's content."""
    import hashlib

    h = hashlib.sha256(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()[:20]
