"""A fake ComfyUI server for tests and benches: the documented HTTP and websocket API on
127.0.0.1, with a pretend sampler instead of a model.

It speaks what Studio uses: GET /object_info, /queue, /history/{id}, /view, /ws; POST /prompt,
/queue (delete), /interrupt, /upload/image, /upload/mask. Messages have ComfyUI's shapes
(status, execution_start, execution_cached, executing, progress, executed, execution_success,
execution_error, execution_interrupted) and previews are binary frames (uint32 event 1, uint32
format 1 = JPEG, JPEG bytes). "Sampling" draws a solid colour picked by the seed, at the empty
latent's size or the uploaded image's, so tests can tell which seed made which file.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from PIL import Image

CORE_NODES = (
    "CheckpointLoaderSimple",
    "CLIPTextEncode",
    "EmptyLatentImage",
    "KSampler",
    "VAEDecode",
    "VAEEncode",
    "SetLatentNoiseMask",
    "LoadImage",
    "SaveImage",
    "PreviewImage",
    "UpscaleModelLoader",
    "ImageUpscaleWithModel",
    "LatentUpscale",
    "LatentUpscaleBy",
    "ImageScale",
    "ImageScaleBy",
    "RescaleCFG",
    "LoraLoader",
)


def seed_colour(seed: int) -> tuple[int, int, int]:
    """The colour the fake sampler paints for a seed."""
    return (seed * 53 + 40) % 256, (seed * 97 + 80) % 256, (seed * 193 + 120) % 256


@dataclass
class Behaviour:
    """How the fake server misbehaves; tests change these between jobs."""

    step_delay: float = 0.0  # seconds per sampling step
    fail_class: str = ""  # a node class that raises while running
    hang_after_start: bool = False  # accepts the job, says it started, then nothing
    die_at_step: int = 0  # the server stops at this step of its first job (0 = never)
    # Previews the server sends on its own (ComfyUI started with --preview-method); off by
    # default, as in ComfyUI, where a job gets previews when its extra_data asks for them.
    preview: bool = False
    # Previews carry their step in the red channel (step * 8 % 256) and their send time is noted
    # in `preview_sent`, so a bench can time a frame from the websocket to the window.
    mark_previews: bool = False
    refuse: str = ""  # /prompt refuses every workflow with this reason (its own validation)


@dataclass
class _Entry:
    number: int
    prompt_id: str
    prompt: dict[str, Any]
    client_id: str
    preview_method: str = ""  # what the job's extra_data asked for


@dataclass
class FakeComfyUI:
    token: str = ""
    checkpoints: tuple[str, ...] = ("sd_xl_base_1.0.safetensors", "SD15/v1-5-pruned.safetensors")
    loras: tuple[str, ...] = ("detail.safetensors",)
    upscale_models: tuple[str, ...] = ("4x-UltraSharp.pth",)
    nodes: tuple[str, ...] = CORE_NODES
    max_upload: int = 20 * 1024 * 1024
    behaviour: Behaviour = field(default_factory=Behaviour)
    # What Studio did, for assertions.
    prompts: list[dict[str, Any]] = field(default_factory=list)
    uploads: dict[str, Image.Image] = field(default_factory=dict)
    interrupts: list[Any] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    headers_seen: list[str] = field(default_factory=list)
    preview_sent: list[tuple[float, int]] = field(default_factory=list)  # (perf_counter, step)
    extra_data: list[dict[str, Any]] = field(default_factory=list)  # each /prompt's, in order
    upload_count: int = 0

    def __post_init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None

    # -- control (from the test's thread) --------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeComfyUI:
        self._call(self._start())
        return self

    def stop(self) -> None:
        """Stop as a crash would: connections dropped, queue and history gone."""
        if self._runner is not None:
            self._call(self._stop())

    def restart(self) -> None:
        self.stop()
        self._call(self._start())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def queue_foreign(self, count: int) -> None:
        """Pretend `count` jobs of other users wait in this server's queue."""
        self._foreign = count

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    # -- the server ------------------------------------------------------------------------------

    async def _start(self) -> None:
        self._queue: deque[_Entry] = deque()
        self._running: _Entry | None = None
        self._history: dict[str, dict[str, Any]] = {}
        self._outputs: dict[str, bytes] = {}
        self._files: dict[str, Image.Image] = {}
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._wake = asyncio.Event()
        self._interrupted = False
        self._number = 0
        self._foreign = getattr(self, "_foreign", 0)
        app = web.Application(client_max_size=self.max_upload, middlewares=[self._auth])
        app.add_routes(
            [
                web.get("/ws", self._ws),
                web.get("/object_info", self._object_info),
                web.get("/queue", self._get_queue),
                web.post("/queue", self._post_queue),
                web.post("/prompt", self._post_prompt),
                web.post("/interrupt", self._interrupt),
                web.post("/upload/image", self._upload),
                web.post("/upload/mask", self._upload_mask),
                web.get("/view", self._view),
                web.get("/history/{prompt_id}", self._get_history),
            ]
        )
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._worker = asyncio.get_running_loop().create_task(self._execute_forever())

    async def _stop(self) -> None:
        self._worker.cancel()
        for ws in list(self._sockets.values()):
            await ws.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.headers_seen.append(request.headers.get("Authorization", ""))
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, text="Unauthorized")
        return await handler(request)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        self._sockets[sid] = ws
        try:
            await ws.send_json({"type": "status", "data": {"status": self._status(), "sid": sid}})
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            if self._sockets.get(sid) is ws:
                del self._sockets[sid]
        return ws

    def _status(self) -> dict[str, Any]:
        remaining = len(self._queue) + (self._running is not None) + self._foreign
        return {"exec_info": {"queue_remaining": remaining}}

    async def _object_info(self, request: web.Request) -> web.Response:
        def combo(values: tuple[str, ...]) -> list[Any]:
            return [list(values), {}]

        inputs = {
            "CheckpointLoaderSimple": {"ckpt_name": combo(self.checkpoints)},
            "LoraLoader": {"lora_name": combo(self.loras)},
            "UpscaleModelLoader": {"model_name": combo(self.upscale_models)},
            # Newer servers describe lists like this:
            "KSampler": {
                "sampler_name": ["COMBO", {"options": ["euler", "euler_ancestral", "dpmpp_2m"]}],
                "scheduler": ["COMBO", {"options": ["normal", "karras"]}],
            },
            "LoadImage": {"image": combo(tuple(self._files))},
        }
        info = {
            name: {"input": {"required": inputs.get(name, {})}, "name": name, "output_node": False}
            for name in self.nodes
        }
        return web.json_response(info)

    async def _get_queue(self, request: web.Request) -> web.Response:
        def row(entry: _Entry) -> list[Any]:
            return [entry.number, entry.prompt_id, entry.prompt, {"client_id": entry.client_id}, []]

        running = [row(self._running)] if self._running else []
        running += [[-1, f"foreign-{i}", {}, {}, []] for i in range(self._foreign)]
        return web.json_response(
            {"queue_running": running, "queue_pending": [row(e) for e in self._queue]}
        )

    async def _post_queue(self, request: web.Request) -> web.Response:
        body = await request.json()
        for prompt_id in body.get("delete") or []:
            self.deleted.append(prompt_id)
            self._queue = deque(e for e in self._queue if e.prompt_id != prompt_id)
        if body.get("clear"):
            self._queue.clear()
        return web.Response()

    async def _interrupt(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        self.interrupts.append(body.get("prompt_id"))
        wanted = body.get("prompt_id")
        if self._running is not None and wanted in (None, self._running.prompt_id):
            self._interrupted = True
        return web.Response()

    async def _post_prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        prompt = body.get("prompt")
        if not isinstance(prompt, dict):
            return web.json_response({"error": "no prompt", "node_errors": []}, status=400)
        for node_id, entry in prompt.items():
            if entry.get("class_type") not in self.nodes:
                error = {
                    "type": "invalid_prompt",
                    "message": f"Cannot execute because node {entry.get('class_type')} does not "
                    "exist.",
                    "details": f"Node ID '#{node_id}'",
                    "extra_info": {},
                }
                return web.json_response({"error": error, "node_errors": {}}, status=400)
        problems = {}
        if self.behaviour.refuse:
            problems["1"] = {
                "errors": [
                    {
                        "type": "custom_validation_failed",
                        "message": "Custom validation failed for node",
                        "details": self.behaviour.refuse,
                        "extra_info": {},
                    }
                ],
                "dependent_outputs": [],
                "class_type": prompt.get("1", {}).get("class_type", ""),
            }
        for node_id, entry in prompt.items():
            inputs = entry.get("inputs", {})
            if entry["class_type"] == "LoadImage" and inputs.get("image") not in self._files:
                problems[node_id] = {
                    "errors": [
                        {
                            "type": "custom_validation_failed",
                            "message": "Custom validation failed for node",
                            "details": f"image - Invalid image file: {inputs.get('image')}",
                            "extra_info": {},
                        }
                    ],
                    "dependent_outputs": [],
                    "class_type": "LoadImage",
                }
            if entry["class_type"] == "CheckpointLoaderSimple" and (
                inputs.get("ckpt_name") not in self.checkpoints
            ):
                problems[node_id] = {
                    "errors": [
                        {
                            "type": "value_not_in_list",
                            "message": "Value not in list",
                            "details": f"ckpt_name: '{inputs.get('ckpt_name')}' not in "
                            f"{list(self.checkpoints)}",
                            "extra_info": {},
                        }
                    ],
                    "dependent_outputs": [],
                    "class_type": entry["class_type"],
                }
        if problems:
            error = {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
                "details": "",
                "extra_info": {},
            }
            return web.json_response({"error": error, "node_errors": problems}, status=400)
        self.prompts.append(prompt)
        prompt_id = str(uuid.uuid4())
        self._number += 1
        extra = body.get("extra_data") if isinstance(body.get("extra_data"), dict) else {}
        method = str(extra.get("preview_method") or "")
        self.extra_data.append(extra)
        entry = _Entry(self._number, prompt_id, prompt, body.get("client_id", ""), method)
        self._queue.append(entry)
        self._wake.set()
        return web.json_response(
            {"prompt_id": prompt_id, "number": self._number, "node_errors": {}}
        )

    async def _upload(self, request: web.Request, *, mask: bool = False) -> web.Response:
        post = await request.post()
        part = post.get("image")
        if part is None or not getattr(part, "filename", ""):
            return web.Response(status=400)
        image = Image.open(io.BytesIO(part.file.read()))
        image.load()
        if mask:
            reference = json.loads(str(post.get("original_ref")))
            original = self._files.get(reference["filename"])
            if original is None:
                return web.Response(status=404)
            # Like ComfyUI: the mask's alpha copied onto the original.
            merged = original.convert("RGBA")
            merged.putalpha(image.convert("RGBA").getchannel("A"))
            image = merged
        subfolder = str(post.get("subfolder", ""))
        name = f"{subfolder}/{part.filename}" if subfolder else part.filename
        self._files[name] = image
        self.uploads[name] = image
        self.upload_count += 1
        return web.json_response({"name": part.filename, "subfolder": subfolder, "type": "input"})

    async def _upload_mask(self, request: web.Request) -> web.Response:
        return await self._upload(request, mask=True)

    async def _view(self, request: web.Request) -> web.Response:
        name = request.query.get("filename", "")
        if name not in self._outputs:
            return web.Response(status=404)
        return web.Response(body=self._outputs[name], content_type="image/png")

    async def _get_history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        record = self._history.get(prompt_id)
        return web.json_response({prompt_id: record} if record else {})

    # -- the pretend execution -----------------------------------------------------------------

    async def _send(self, client_id: str, kind: str, data: dict[str, Any]) -> None:
        ws = self._sockets.get(client_id)
        if ws is not None and not ws.closed:
            await ws.send_json({"type": kind, "data": data})

    async def _send_preview(self, client_id: str, colour: tuple[int, int, int]) -> None:
        ws = self._sockets.get(client_id)
        if ws is None or ws.closed:
            return
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), colour).save(buffer, format="JPEG", quality=90)
        await ws.send_bytes(struct.pack(">II", 1, 1) + buffer.getvalue())

    async def _execute_forever(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            entry = self._queue.popleft()
            self._running = entry
            self._interrupted = False
            try:
                await self._execute(entry)
            finally:
                self._running = None

    async def _execute(self, entry: _Entry) -> None:
        sid, pid, prompt = entry.client_id, entry.prompt_id, entry.prompt
        await self._send(sid, "execution_start", {"prompt_id": pid, "timestamp": 0})
        await self._send(sid, "execution_cached", {"nodes": [], "prompt_id": pid})
        if self.behaviour.hang_after_start:
            await asyncio.Event().wait()
        outputs: dict[str, Any] = {}
        picture: Image.Image | None = None
        for node_id in _order(prompt):
            entry_node = prompt[node_id]
            class_type, inputs = entry_node["class_type"], entry_node["inputs"]
            await self._send(
                sid, "executing", {"node": node_id, "display_node": node_id, "prompt_id": pid}
            )
            if class_type == self.behaviour.fail_class:
                await self._send(
                    sid,
                    "execution_error",
                    {
                        "prompt_id": pid,
                        "node_id": node_id,
                        "node_type": class_type,
                        "executed": [],
                        "exception_message": "Tensor sizes do not match.\nTraceback...",
                        "exception_type": "RuntimeError",
                        "traceback": [],
                        "current_inputs": {},
                        "current_outputs": {},
                    },
                )
                self._history[pid] = {
                    "prompt": prompt,
                    "outputs": {},
                    "status": {"status_str": "error"},
                }
                return
            if class_type == "KSampler":
                colour = seed_colour(int(inputs["seed"]))
                size = picture.size if picture is not None else _size(prompt, self._files)
                steps = int(inputs["steps"])
                for step in range(1, steps + 1):
                    if self.behaviour.step_delay:
                        await asyncio.sleep(self.behaviour.step_delay)
                    if self.behaviour.die_at_step and step == self.behaviour.die_at_step:
                        self.behaviour.die_at_step = 0
                        asyncio.get_running_loop().create_task(self._stop())
                        await asyncio.Event().wait()
                    if self._interrupted:
                        await self._send(
                            sid,
                            "execution_interrupted",
                            {
                                "prompt_id": pid,
                                "node_id": node_id,
                                "node_type": class_type,
                                "executed": [],
                            },
                        )
                        self._history[pid] = {
                            "prompt": prompt,
                            "outputs": {},
                            "status": {"status_str": "error"},
                        }
                        return
                    await self._send(
                        sid,
                        "progress",
                        {"value": step, "max": steps, "prompt_id": pid, "node": node_id},
                    )
                    if self.behaviour.mark_previews:
                        self.preview_sent.append((time.perf_counter(), step))
                        await self._send_preview(sid, (step * 8 % 256, 128, 128))
                    elif self.behaviour.preview or entry.preview_method not in ("", "none"):
                        await self._send_preview(sid, colour)
                picture = Image.new("RGB", size, colour)
            if class_type == "LoadImage" and picture is None:
                picture = self._files[inputs["image"]].convert("RGB")
            if class_type == "ImageUpscaleWithModel" and picture is not None:
                picture = picture.resize((picture.width * 4, picture.height * 4))
            if class_type == "ImageScaleBy" and picture is not None:
                scale = float(inputs["scale_by"])
                picture = picture.resize(
                    (round(picture.width * scale), round(picture.height * scale))
                )
            if class_type in ("SaveImage", "PreviewImage") and picture is not None:
                name = f"{inputs.get('filename_prefix', 'ComfyUI')}_{len(self._outputs):05}_.png"
                buffer = io.BytesIO()
                picture.save(buffer, format="PNG")
                self._outputs[name] = buffer.getvalue()
                images = [{"filename": name, "subfolder": "", "type": "output"}]
                outputs[node_id] = {"images": images}
                await self._send(
                    sid,
                    "executed",
                    {
                        "node": node_id,
                        "display_node": node_id,
                        "output": {"images": images},
                        "prompt_id": pid,
                    },
                )
        self._history[pid] = {
            "prompt": prompt,
            "outputs": outputs,
            "status": {"status_str": "success", "completed": True},
        }
        await self._send(sid, "execution_success", {"prompt_id": pid, "timestamp": 0})
        await self._send(sid, "executing", {"node": None, "prompt_id": pid})


def _order(prompt: dict[str, Any]) -> list[str]:
    done: list[str] = []

    def visit(node_id: str) -> None:
        if node_id in done:
            return
        for value in prompt[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt:
                visit(str(value[0]))
        done.append(node_id)

    for node_id in prompt:
        visit(node_id)
    return done


def _size(prompt: dict[str, Any], files: dict[str, Image.Image]) -> tuple[int, int]:
    for entry in prompt.values():
        if entry["class_type"] == "EmptyLatentImage":
            return int(entry["inputs"]["width"]), int(entry["inputs"]["height"])
    for entry in prompt.values():
        if entry["class_type"] == "LoadImage" and entry["inputs"]["image"] in files:
            return files[entry["inputs"]["image"]].size
    return 64, 64
