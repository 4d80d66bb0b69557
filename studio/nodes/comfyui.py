"""ComfyUI workflows in API ("prompt") format, turned into Studio graphs.

Only ComfyUI's core nodes that have a Studio counterpart are understood; anything else is
reported by name so the user knows what to replace. ComfyUI's checkpoint loader has three
outputs (MODEL, CLIP, VAE) where Studio has one `model`, so all three map onto it. Export
back to ComfyUI lives in studio.nodes.comfyui_export.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.errors import WorkflowError
from studio.formats.comfyui import sampler_from_comfyui
from studio.graph.document import Graph, Link, Node
from studio.graph.serialize import MAX_NODES, check_depth

log = logging.getLogger(__name__)

COMFYUI_KEY = "prompt"  # the PNG text chunk ComfyUI writes its API-format workflow to
COLUMN_WIDTH, ROW_HEIGHT = 260.0, 160.0

_UI_FORMAT = (
    "This ComfyUI workflow is in the editor's format, which Studio cannot read: in ComfyUI, "
    'save it with "Export (API)" (called "Save (API Format)" in older versions) and import that file.'
)
# Value-holding nodes whose "value" input stands in for a literal.
_PRIMITIVES = frozenset(
    {
        "PrimitiveNode",
        "PrimitiveInt",
        "PrimitiveFloat",
        "PrimitiveString",
        "PrimitiveStringMultiline",
        "PrimitiveBoolean",
    }
)
# ComfyUI's resize methods -> ours; "area" and "bislerp" have no exact match.
_IMAGE_METHODS = {
    "lanczos": "lanczos",
    "bicubic": "bicubic",
    "bilinear": "bilinear",
    "nearest-exact": "nearest",
    "area": "bilinear",
}
_LATENT_METHODS = {
    "nearest-exact": "nearest-exact",
    "bilinear": "bilinear",
    "bicubic": "bicubic",
    "area": "bilinear",
    "bislerp": "bilinear",
}
# Titles ComfyUI gives nodes by default; a title the user chose is kept on import.
_DEFAULT_TITLES = frozenset(
    {
        "KSampler",
        "KSampler (Advanced)",
        "Load Checkpoint",
        "CLIP Text Encode (Prompt)",
        "Empty Latent Image",
        "VAE Decode",
        "VAE Encode",
        "VAE Encode (for Inpainting)",
        "Load Image",
        "Save Image",
        "Preview Image",
        "Set Latent Noise Mask",
        "Load Upscale Model",
        "Upscale Image (using Model)",
        "Upscale Image",
        "Upscale Image By",
        "Upscale Latent",
        "Upscale Latent By",
        "Grow Mask",
        "Invert Mask",
        "Image Composite Masked",
        "RescaleCFG",
        "PerturbedAttentionGuidance",
    }
)
_PLACEHOLDER: dict[type, Any] = {int: 0, float: 0.0, str: "", bool: False}
_KIND = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}
_MISSING = object()


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def _id_order(cid: str) -> tuple[bool, str]:
    return (not cid.isdigit(), cid.zfill(12))


def _defaults(node_type: str) -> dict[str, Any]:
    from studio.nodes.registry import specs

    spec = specs().get(node_type)
    return spec.defaults() if spec else {}


# --- import ---------------------------------------------------------------------------------


class _Importer:
    """Builds a Graph from an API-format prompt, collecting every problem before failing."""

    def __init__(self, prompt: dict[str, dict[str, Any]], name: str) -> None:
        self.prompt = prompt
        self.graph = Graph(name=name)
        # (ComfyUI node, output index) -> (our node, output port)
        self.outputs: dict[tuple[str, int], tuple[str, str]] = {}
        # (our node, input port, ComfyUI link, ComfyUI node, ComfyUI input)
        self.pending: list[tuple[str, str, list[Any], str, str]] = []
        # Model patches become Sample parameters: ComfyUI node -> (its model link, params)
        self.patches: dict[str, tuple[Any, dict[str, float]]] = {}
        self.problems: list[str] = []

    def where(self, cid: str) -> str:
        return f"{self.prompt[cid]['class_type']} (node {cid})"

    def add(
        self,
        cid: str,
        node_type: str,
        params: dict[str, Any],
        outputs: tuple[str, ...] = (),
        suffix: str = "",
    ) -> str:
        title = (self.prompt[cid].get("_meta") or {}).get("title")
        keep = isinstance(title, str) and not suffix and title not in _DEFAULT_TITLES
        node = Node(
            f"c{cid}{suffix}",
            node_type,
            {**_defaults(node_type), **params},
            title=title if keep and title != self.prompt[cid]["class_type"] else "",
        )
        self.graph.add(node)
        for index, port in enumerate(outputs):
            self.outputs[(cid, index)] = (node.id, port)
        return node.id

    def link(self, node_id: str, port: str, cid: str, inputs: dict[str, Any], name: str) -> None:
        value = inputs.get(name)
        if _is_link(value):
            self.pending.append((node_id, port, value, cid, name))
        else:
            self.problems.append(f"{self.where(cid)} has nothing connected to {name}")

    def value(self, cid: str, inputs: dict[str, Any], name: str, kind: type, default: Any) -> Any:
        """A literal input (or the value of a primitive node linked to it), checked for type."""
        raw = inputs.get(name, default)
        if _is_link(raw):
            source = self.prompt.get(str(raw[0]))
            held = (source or {}).get("inputs", {}).get("value", _MISSING)
            if source is None or source["class_type"] not in _PRIMITIVES or _is_link(held):
                self.problems.append(
                    f"the {name} of {self.where(cid)} comes from node {raw[0]}, "
                    "which Studio cannot read"
                )
                return _PLACEHOLDER[kind]
            raw = held
        if raw is _MISSING:
            self.problems.append(f"{self.where(cid)} has no {name}")
            return _PLACEHOLDER[kind]
        if kind is int and isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            raw = float(raw)
        if not isinstance(raw, kind) or (kind is not bool and isinstance(raw, bool)):
            self.problems.append(f"the {name} of {self.where(cid)} is {raw!r}, not {_KIND[kind]}")
            return _PLACEHOLDER[kind]
        return raw

    def method(self, cid: str, inputs: dict[str, Any], table: dict[str, str]) -> str:
        method = self.value(cid, inputs, "upscale_method", str, "nearest-exact")
        if method not in table:
            self.problems.append(
                f"{self.where(cid)} uses the {method!r} method Studio does not have"
            )
            return next(iter(table.values()))
        if method in ("area", "bislerp"):
            log.info("%s: %s resizing imported as %s", self.where(cid), method, table[method])
        return table[method]

    def resolve(self) -> None:
        connected: set[tuple[str, str]] = set()
        for dst, port, link, cid, name in self.pending:
            params: dict[str, float] = {}
            for _ in range(len(self.patches) + 1):
                src = str(link[0])
                if src not in self.patches:
                    break
                link, patch = self.patches[src]
                for key, value in patch.items():
                    params.setdefault(key, value)  # the patch nearest the sampler wins
                if not _is_link(link):
                    self.problems.append(f"{self.where(src)} has nothing connected to model")
                    break
            else:
                self.problems.append(f"the model patches before {self.where(cid)} form a loop")
                continue
            source = self.outputs.get((str(link[0]), link[1]))
            if source is None:
                src = str(link[0])
                what = f"node {src}, which is not in the workflow"
                if src in self.prompt:
                    what = f"output {link[1]} of {self.where(src)}, which Studio cannot use"
                self.problems.append(f"the {name} of {self.where(cid)} links to {what}")
                continue
            if params:
                self.graph.nodes[dst].params.update(params)
            if (dst, port) in connected:
                self.graph.connect(source[0], source[1], dst, port)
            else:  # Graph.connect scans every link: appended directly, an import stays linear
                self.graph.links.append(Link(source[0], source[1], dst, port))
                connected.add((dst, port))


_Converter = Callable[[_Importer, str, dict[str, Any]], None]


def _checkpoint(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    path = im.value(cid, inputs, "ckpt_name", str, _MISSING)
    im.add(cid, "LoadCheckpoint", {"path": path}, ("model", "model", "model"))


def _text_encode(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    node = im.add(
        cid, "Prompt", {"text": im.value(cid, inputs, "text", str, "")}, ("conditioning",)
    )
    im.link(node, "model", cid, inputs, "clip")


def _empty_latent(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    sizes = (("width", 512), ("height", 512), ("batch_size", 1))
    params = {name: im.value(cid, inputs, name, int, default) for name, default in sizes}
    im.add(cid, "EmptyLatent", params, ("latent",))


def _sampling(im: _Importer, cid: str, inputs: dict[str, Any], seed: str) -> dict[str, Any]:
    name = im.value(cid, inputs, "sampler_name", str, "euler")
    scheduler = im.value(cid, inputs, "scheduler", str, "normal")
    sampler, exact = sampler_from_comfyui(name, scheduler)
    if not exact:
        log.info("%s: sampler %s/%s imported as %s", im.where(cid), name, scheduler, sampler)
    return {
        "seed": im.value(cid, inputs, seed, int, 0),
        "steps": im.value(cid, inputs, "steps", int, 20),
        "cfg_scale": im.value(cid, inputs, "cfg", float, 8.0),
        "sampler": sampler,
    }


def _add_sample(im: _Importer, cid: str, inputs: dict[str, Any], params: dict[str, Any]) -> None:
    node = im.add(cid, "Sample", params, ("latent",))
    for port, name in (
        ("model", "model"),
        ("positive", "positive"),
        ("negative", "negative"),
        ("latent", "latent_image"),
    ):
        im.link(node, port, cid, inputs, name)


def _ksampler(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    params = _sampling(im, cid, inputs, "seed")
    params["denoise"] = im.value(cid, inputs, "denoise", float, 1.0)
    _add_sample(im, cid, inputs, params)


def _ksampler_advanced(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    params = _sampling(im, cid, inputs, "noise_seed")
    steps = params["steps"]
    start = im.value(cid, inputs, "start_at_step", int, 0)
    end = im.value(cid, inputs, "end_at_step", int, 10000)
    if im.value(cid, inputs, "add_noise", str, "enable") != "enable":
        im.problems.append(f"{im.where(cid)} adds no noise, which Studio's sampler always does")
    if end < steps:
        im.problems.append(f"{im.where(cid)} stops at step {end} of {steps}")
    if not 0 <= start < steps:
        im.problems.append(f"{im.where(cid)} starts at step {start} of {steps}")
    # Starting at step s of n is what a strength of 1 - s/n does in Studio.
    params["denoise"] = round(1.0 - start / steps, 4) if 0 <= start < steps else 1.0
    _add_sample(im, cid, inputs, params)


def _vae_decode(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    node = im.add(cid, "Decode", {}, ("image",))
    im.link(node, "model", cid, inputs, "vae")
    im.link(node, "latent", cid, inputs, "samples")


def _vae_encode(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    node = im.add(cid, "EncodeImage", {}, ("latent",))
    im.link(node, "model", cid, inputs, "vae")
    im.link(node, "image", cid, inputs, "pixels")


def _vae_encode_inpaint(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    # ComfyUI does the three steps in one node; the last of ours carries its id and output.
    encode = im.add(cid, "EncodeImage", {}, suffix="_encode")
    im.link(encode, "model", cid, inputs, "vae")
    im.link(encode, "image", cid, inputs, "pixels")
    grow = im.add(
        cid,
        "GrowMask",
        {"pixels": im.value(cid, inputs, "grow_mask_by", int, 6)},
        suffix="_grow",
    )
    im.link(grow, "mask", cid, inputs, "mask")
    node = im.add(cid, "SetLatentMask", {}, ("latent",))
    im.graph.connect(encode, "latent", node, "latent")
    im.graph.connect(grow, "mask", node, "mask")


def _set_noise_mask(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    node = im.add(cid, "SetLatentMask", {}, ("latent",))
    im.link(node, "latent", cid, inputs, "samples")
    im.link(node, "mask", cid, inputs, "mask")


def _load_image(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    path = im.value(cid, inputs, "image", str, _MISSING)
    im.add(cid, "LoadImage", {"path": path}, ("image", "mask"))


def _save_image(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    prefix = im.value(cid, inputs, "filename_prefix", str, "ComfyUI")
    # ComfyUI's prefix may name a subfolder of its output folder, which Studio does not have.
    node = im.add(cid, "SaveImage", {"prefix": re.split(r"[\\/]", prefix)[-1] or "studio"})
    im.link(node, "image", cid, inputs, "images")


def _preview_image(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    im.link(im.add(cid, "PreviewImage", {}), "image", cid, inputs, "images")


def _upscale_loader(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    path = im.value(cid, inputs, "model_name", str, _MISSING)
    im.add(cid, "LoadUpscaleModel", {"path": path}, ("upscale_model",))


def _upscale_with_model(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    node = im.add(cid, "UpscaleWithModel", {}, ("image",))
    im.link(node, "upscale_model", cid, inputs, "upscale_model")
    im.link(node, "image", cid, inputs, "image")


def _sized(im: _Importer, cid: str, inputs: dict[str, Any]) -> dict[str, int]:
    width = im.value(cid, inputs, "width", int, 512)
    height = im.value(cid, inputs, "height", int, 512)
    if width <= 0 or height <= 0:
        im.problems.append(
            f"{im.where(cid)} keeps the aspect ratio from one side (width or height 0), "
            "which Studio cannot do: set both"
        )
    if im.value(cid, inputs, "crop", str, "disabled") != "disabled":
        im.problems.append(f"{im.where(cid)} crops, which Studio's resizing does not")
    return {"width": width, "height": height}


def _resizer(node_type: str, port: str, source: str, table: dict[str, str], by: bool) -> _Converter:
    def convert(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
        params: dict[str, Any] = {"method": im.method(cid, inputs, table)}
        if by:
            params["scale"] = im.value(cid, inputs, "scale_by", float, 2.0)
        else:
            params.update(_sized(im, cid, inputs))
        im.link(im.add(cid, node_type, params, (port,)), port, cid, inputs, source)

    return convert


def _grow_mask(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    node = im.add(cid, "GrowMask", {"pixels": im.value(cid, inputs, "expand", int, 0)}, ("mask",))
    im.link(node, "mask", cid, inputs, "mask")


def _invert_mask(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    im.link(im.add(cid, "InvertMask", {}, ("mask",)), "mask", cid, inputs, "mask")


def _composite(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
    if im.value(cid, inputs, "x", int, 0) or im.value(cid, inputs, "y", int, 0):
        im.problems.append(f"{im.where(cid)} pastes at an offset, which Studio does not")
    # ComfyUI pastes the pixels as they are: an imported workflow does what it did there.
    node = im.add(cid, "InpaintComposite", {"color_match": False}, ("image",))
    im.link(node, "original", cid, inputs, "destination")
    im.link(node, "generated", cid, inputs, "source")
    im.link(node, "mask", cid, inputs, "mask")


def _model_patch(param: str, name: str) -> _Converter:
    def convert(im: _Importer, cid: str, inputs: dict[str, Any]) -> None:
        im.patches[cid] = (inputs.get("model"), {param: im.value(cid, inputs, name, float, 0.0)})

    return convert


_IMPORTERS: dict[str, _Converter] = {
    "CheckpointLoaderSimple": _checkpoint,
    "CLIPTextEncode": _text_encode,
    "EmptyLatentImage": _empty_latent,
    "KSampler": _ksampler,
    "KSamplerAdvanced": _ksampler_advanced,
    "VAEDecode": _vae_decode,
    "VAEEncode": _vae_encode,
    "VAEEncodeForInpaint": _vae_encode_inpaint,
    "SetLatentNoiseMask": _set_noise_mask,
    "LoadImage": _load_image,
    "SaveImage": _save_image,
    "PreviewImage": _preview_image,
    "UpscaleModelLoader": _upscale_loader,
    "ImageUpscaleWithModel": _upscale_with_model,
    "ImageScale": _resizer("Resize", "image", "image", _IMAGE_METHODS, by=False),
    "ImageScaleBy": _resizer("Resize", "image", "image", _IMAGE_METHODS, by=True),
    "LatentUpscale": _resizer("LatentUpscale", "latent", "samples", _LATENT_METHODS, by=False),
    "LatentUpscaleBy": _resizer("LatentUpscale", "latent", "samples", _LATENT_METHODS, by=True),
    "GrowMask": _grow_mask,
    "InvertMask": _invert_mask,
    "ImageCompositeMasked": _composite,
    "RescaleCFG": _model_patch("guidance_rescale", "multiplier"),
    "PerturbedAttentionGuidance": _model_patch("pag_scale", "scale"),
}
# LoRA, CLIP skip and VAE loaders live with their exporters.
from studio.nodes.comfyui_addons import DEFAULT_TITLES, IMPORTERS  # noqa: E402

_IMPORTERS.update(IMPORTERS)
_DEFAULT_TITLES = _DEFAULT_TITLES | frozenset(DEFAULT_TITLES)


def _api_prompt(data: dict[str, Any] | str) -> dict[str, dict[str, Any]]:
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise WorkflowError("The ComfyUI workflow is not valid JSON.") from exc
        except RecursionError:
            raise WorkflowError("The ComfyUI workflow is nested too deeply to read.") from None
    check_depth(data, "The ComfyUI workflow")
    if not isinstance(data, dict):
        raise WorkflowError("This is not a ComfyUI workflow: it should be a JSON object of nodes.")
    if isinstance(data.get("nodes"), list) and "links" in data:
        raise WorkflowError(_UI_FORMAT)
    wrapped = data.get("prompt")
    if isinstance(wrapped, dict) and "class_type" not in wrapped:  # the body of a /prompt request
        data = wrapped
    if not data:
        raise WorkflowError("The ComfyUI workflow has no nodes.")
    prompt: dict[str, dict[str, Any]] = {}
    for key, node in data.items():
        inputs = node.get("inputs", {}) if isinstance(node, dict) else None
        if not isinstance(inputs, dict) or not isinstance(node.get("class_type"), str):
            raise WorkflowError(
                f"Node {key} of the ComfyUI workflow has no class_type and inputs: "
                "this is not an API-format workflow."
            )
        prompt[str(key)] = {**node, "inputs": inputs}
    return prompt


def import_comfyui(data: dict[str, Any] | str, name: str = "ComfyUI workflow") -> Graph:
    """A Studio graph from a ComfyUI API-format workflow (a dict, or its JSON text)."""
    prompt = _api_prompt(data)
    if len(prompt) > MAX_NODES:
        raise WorkflowError(
            f"This ComfyUI workflow has {len(prompt)} nodes, more than the {MAX_NODES} "
            "Studio imports."
        )
    order = sorted(prompt, key=_id_order)
    unsupported = [
        f"{prompt[cid]['class_type']} (node {cid})"
        for cid in order
        if prompt[cid]["class_type"] not in _IMPORTERS
        and prompt[cid]["class_type"] not in _PRIMITIVES
    ]
    if unsupported:
        raise WorkflowError(
            f"This ComfyUI workflow uses nodes Studio does not have: {', '.join(unsupported)}."
        )
    im = _Importer(prompt, name)
    for cid in order:
        if prompt[cid]["class_type"] in _IMPORTERS:
            _IMPORTERS[prompt[cid]["class_type"]](im, cid, prompt[cid]["inputs"])
    im.resolve()
    if im.problems:
        raise WorkflowError(
            f"Studio cannot import this ComfyUI workflow: {'; '.join(im.problems)}."
        )
    _layout(im.graph)
    _expose(im.graph)
    return im.graph


def import_comfyui_png(path: str | os.PathLike[str]) -> Graph:
    """A Studio graph from the workflow ComfyUI stored in a PNG's "prompt" text chunk."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            texts = dict(getattr(image, "text", None) or image.info)
    except FileNotFoundError as exc:
        raise WorkflowError(f"The image {path.name} was not found in {path.parent}.") from exc
    except ValueError as exc:  # PIL: "Decompressed Data Too Large" for a huge text chunk
        raise WorkflowError(
            f"{path.name} holds a text chunk too large to read safely; it was not opened."
        ) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise WorkflowError(f"{path.name} is not an image Studio can read.") from exc
    prompt = texts.get(COMFYUI_KEY)
    if not isinstance(prompt, str) or not prompt.strip():
        raise WorkflowError(f"{path.name} holds no ComfyUI workflow (no API-format prompt in it).")
    return import_comfyui(prompt, name=path.stem)


def _layout(graph: Graph) -> None:
    """Columns by dependency depth, left to right, so the node editor shows the flow."""
    # Longest path from a source, by Kahn's algorithm: iterative, since the file decides how
    # deep a chain is. Nodes on a loop (the validator reports it) stay in column 0.
    feeds: dict[str, list[str]] = {node_id: [] for node_id in graph.nodes}
    waiting = dict.fromkeys(graph.nodes, 0)
    for link in graph.links:
        if link.src in feeds and link.dst in waiting:
            feeds[link.src].append(link.dst)
            waiting[link.dst] += 1
    depth = dict.fromkeys(graph.nodes, 0)
    ready = [node_id for node_id, count in waiting.items() if count == 0]
    while ready:
        node_id = ready.pop()
        for dst in feeds[node_id]:
            depth[dst] = max(depth[dst], depth[node_id] + 1)
            waiting[dst] -= 1
            if waiting[dst] == 0:
                ready.append(dst)

    rows: dict[int, int] = {}
    for node_id, node in graph.nodes.items():
        column = depth[node_id]
        row = rows.get(column, 0)
        rows[column] = row + 1
        node.position = (column * COLUMN_WIDTH, row * ROW_HEIGHT)


def _reach(start: list[str], step: dict[str, list[str]]) -> list[str]:
    """Nodes reachable from `start` through `step` (not `start` itself unless on a loop)."""
    found: dict[str, None] = {}
    todo = list(start)
    while todo:
        for other in step.get(todo.pop(), ()):
            if other not in found:
                found[other] = None
                todo.append(other)
    return list(found)


def _expose(graph: Graph) -> None:
    """Show the usual settings in the prompt panel, those of the first-pass sampler."""
    # Link indexes built once: the file decides how many nodes there are.
    sources: dict[str, list[str]] = {}
    consumers: dict[str, list[str]] = {}
    for link in graph.links:
        sources.setdefault(link.dst, []).append(link.src)
        consumers.setdefault(link.src, []).append(link.dst)
    samples = graph.find("Sample")
    after_a_sample = set(_reach([s.id for s in samples], consumers))
    first = [s for s in samples if s.id not in after_a_sample]
    main = (first or samples or [None])[0]
    upstream = _reach([main.id], sources) if main else []

    def first_of(node_type: str) -> Node | None:
        preferred = [graph.nodes[a] for a in upstream if graph.nodes[a].type == node_type]
        return (preferred or graph.find(node_type) or [None])[0]

    if main:
        links = graph.inputs_of(main.id)
        for role, label in (("positive", "Prompt"), ("negative", "Negative prompt")):
            if role in links and graph.nodes[links[role].src].type == "Prompt":
                prompt = graph.nodes[links[role].src]
                prompt.title = prompt.title or label
                graph.expose(prompt.id, "text", label)
    if checkpoint := first_of("LoadCheckpoint"):
        graph.expose(checkpoint.id, "path", "Model")
    if main:
        for param, label in (
            ("sampler", "Sampler"),
            ("steps", "Steps"),
            ("cfg_scale", "CFG scale"),
            ("seed", "Seed"),
        ):
            graph.expose(main.id, param, label)
        latent = graph.inputs_of(main.id).get("latent")
        if latent is None or graph.nodes[latent.src].type != "EmptyLatent":
            graph.expose(main.id, "denoise", "Strength")
    if empty := first_of("EmptyLatent"):
        for param, label in (
            ("width", "Width"),
            ("height", "Height"),
            ("batch_size", "Batch count"),
        ):
            graph.expose(empty.id, param, label)
    for node_type, param, label in (
        ("LoadImage", "path", "Image"),
        ("GrowMask", "pixels", "Mask grow"),
        ("LoadUpscaleModel", "path", "Upscaler"),
    ):
        if node := first_of(node_type):
            graph.expose(node.id, param, label)
