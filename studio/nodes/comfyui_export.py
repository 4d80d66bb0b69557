"""Studio graphs exported as ComfyUI workflows in API ("prompt") format.

Only nodes with a ComfyUI core equivalent can be exported; anything else is reported by name.
Studio's one `model` output stands for all three outputs of ComfyUI's checkpoint loader, so
the exporter picks the output index from what the consuming input wants.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

from studio.errors import WorkflowError
from studio.formats.comfyui import sampler_to_comfyui
from studio.graph.document import Graph, Node
from studio.nodes.comfyui import _defaults, _id_order
from studio.nodes.comfyui_addons import EXPORTERS as ADDON_EXPORTERS
from studio.nodes.comfyui_addons import route

_CHECKPOINT_OUTPUT = {"MODEL": 0, "CLIP": 1, "VAE": 2}


def _spec_title(node_type: str) -> str:
    from studio.nodes.registry import specs

    spec = specs().get(node_type)
    return spec.title if spec else node_type


class _Exporter:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.out: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []
        # Ids that came from ComfyUI ("c12") go back as they were; others get fresh numbers.
        self.ids: dict[str, str] = {}
        for node_id in graph.nodes:
            match = re.fullmatch(r"c(\d+)", node_id)
            if match and match[1] not in self.ids.values():
                self.ids[node_id] = match[1]
        self.next_id = 1 + max((int(v) for v in self.ids.values()), default=0)
        for node_id in graph.nodes:
            if node_id not in self.ids:
                self.ids[node_id] = self.fresh_id()

    def fresh_id(self) -> str:
        while str(self.next_id) in self.ids.values() or str(self.next_id) in self.out:
            self.next_id += 1
        self.next_id += 1
        return str(self.next_id - 1)

    def where(self, node: Node) -> str:
        return f"{node.title or _spec_title(node.type)} (node {node.id})"

    def param(self, node: Node, name: str) -> Any:
        return node.params[name] if name in node.params else _defaults(node.type).get(name)

    def emit(self, node: Node, class_type: str, inputs: dict[str, Any]) -> None:
        entry: dict[str, Any] = {"class_type": class_type, "inputs": inputs}
        if node.title:
            entry["_meta"] = {"title": node.title}
        self.out[self.ids[node.id]] = entry

    def link(self, node: Node, port: str, wants: str = "MODEL") -> list[Any] | None:
        """[ComfyUI node, output index] feeding `port`; `wants` picks the checkpoint output."""
        link = self.graph.inputs_of(node.id).get(port)
        if link is None or link.src not in self.graph.nodes:
            self.problems.append(f"{self.where(node)} has nothing connected to its {port} input")
            return None
        source = self.graph.nodes[link.src]
        while source.type in _PASS_THROUGH:
            # A whole-picture generation region changes nothing: link past it.
            through = self.graph.inputs_of(source.id).get(_PASS_THROUGH[source.type][link.src_port])
            if through is None or through.src not in self.graph.nodes:
                self.problems.append(f"{self.where(source)} has nothing connected to it")
                return None
            link, source = through, self.graph.nodes[through.src]
        link, source, index = route(self.graph, link, source, wants)  # LoRA, CLIP skip, VAE
        if index is not None:
            return [self.ids[source.id], index]
        if source.type == "LoadCheckpoint":
            index = _CHECKPOINT_OUTPUT[wants]
        else:
            index = 1 if (source.type, link.src_port) == ("LoadImage", "mask") else 0
        return [self.ids[source.id], index]


def _file_name(path: str) -> str:
    """ComfyUI names files relative to its model folders; an absolute path keeps its name only."""
    if os.path.isabs(path) or re.match(r"^([A-Za-z]:)?[\\/]", path):
        return re.split(r"[\\/]", path)[-1]
    return path


def _export_sample(ex: _Exporter, node: Node) -> None:
    sampler = ex.param(node, "sampler")
    names = sampler_to_comfyui(sampler)
    if names is None:
        ex.problems.append(f"ComfyUI has no sampler like {sampler} ({ex.where(node)})")
        names = ("euler", "normal")
    if ex.param(node, "cfg_cutoff") < 1:
        ex.problems.append(f"the CFG cut-off of {ex.where(node)} has no ComfyUI equivalent")
    model = ex.link(node, "model")
    for param, class_type, name in (
        ("guidance_rescale", "RescaleCFG", "multiplier"),
        ("pag_scale", "PerturbedAttentionGuidance", "scale"),
    ):
        if value := ex.param(node, param):
            patch = ex.fresh_id()
            ex.out[patch] = {"class_type": class_type, "inputs": {"model": model, name: value}}
            model = [patch, 0]
    ex.emit(
        node,
        "KSampler",
        {
            "seed": ex.param(node, "seed"),
            "steps": ex.param(node, "steps"),
            "cfg": ex.param(node, "cfg_scale"),
            "sampler_name": names[0],
            "scheduler": names[1],
            "denoise": ex.param(node, "denoise"),
            "model": model,
            "positive": ex.link(node, "positive"),
            "negative": ex.link(node, "negative"),
            "latent_image": ex.link(node, "latent"),
        },
    )


def _export_resize(ex: _Exporter, node: Node) -> None:
    image = node.type == "Resize"
    source, name = ("image", "image") if image else ("samples", "latent")
    method = ex.param(node, "method")
    if image:
        method = "nearest-exact" if method == "nearest" else method
    width, height = ex.param(node, "width"), ex.param(node, "height")
    inputs: dict[str, Any] = {source: ex.link(node, name), "upscale_method": method}
    prefix = "ImageScale" if image else "LatentUpscale"
    if width and height:
        ex.emit(node, prefix, {**inputs, "width": width, "height": height, "crop": "disabled"})
        return
    if width or height:
        ex.problems.append(
            f"{ex.where(node)} sets only one of width and height, which ComfyUI cannot do"
        )
    ex.emit(node, f"{prefix}By", {**inputs, "scale_by": ex.param(node, "scale")})


def _export_composite(ex: _Exporter, node: Node) -> None:
    if ex.param(node, "color_match"):
        ex.problems.append(f"ComfyUI cannot match colours like {ex.where(node)}")
    if "region" in ex.graph.inputs_of(node.id):
        ex.problems.append(f"ComfyUI cannot paste a crop back like {ex.where(node)}")
    inputs = {
        "destination": ex.link(node, "original"),
        "source": ex.link(node, "generated"),
        "x": 0,
        "y": 0,
        "resize_source": True,
        "mask": ex.link(node, "mask"),
    }
    ex.emit(node, "ImageCompositeMasked", inputs)


def _simple(class_type: str, **spec: str) -> Callable[[_Exporter, Node], None]:
    """An exporter from `comfy_input="link:port[:WANTS]"` or `comfy_input="param:name"`."""

    def export(ex: _Exporter, node: Node) -> None:
        inputs: dict[str, Any] = {}
        for name, how in spec.items():
            kind, _, rest = how.partition(":")
            if kind == "link":
                port, _, wants = rest.partition(":")
                inputs[name] = ex.link(node, port, wants or "MODEL")
            elif kind == "file":
                inputs[name] = _file_name(ex.param(node, rest))
            elif kind == "const":
                inputs[name] = json.loads(rest)
            else:
                inputs[name] = ex.param(node, rest)
        ex.emit(node, class_type, inputs)

    return export


_EXPORTERS: dict[str, Callable[[_Exporter, Node], None]] = {
    "LoadCheckpoint": _simple("CheckpointLoaderSimple", ckpt_name="file:path"),
    "Prompt": _simple("CLIPTextEncode", text="param:text", clip="link:model:CLIP"),
    "EmptyLatent": _simple(
        "EmptyLatentImage",
        width="param:width",
        height="param:height",
        batch_size="param:batch_size",
    ),
    "Sample": _export_sample,
    "Decode": _simple("VAEDecode", samples="link:latent", vae="link:model:VAE"),
    "EncodeImage": _simple("VAEEncode", pixels="link:image", vae="link:model:VAE"),
    "SetLatentMask": _simple("SetLatentNoiseMask", samples="link:latent", mask="link:mask"),
    "LoadImage": _simple("LoadImage", image="file:path"),
    "SaveImage": _simple("SaveImage", filename_prefix="param:prefix", images="link:image"),
    "PreviewImage": _simple("PreviewImage", images="link:image"),
    "LoadUpscaleModel": _simple("UpscaleModelLoader", model_name="file:path"),
    "UpscaleWithModel": _simple(
        "ImageUpscaleWithModel", upscale_model="link:upscale_model", image="link:image"
    ),
    "Resize": _export_resize,
    "LatentUpscale": _export_resize,
    "GrowMask": _simple(
        "GrowMask", mask="link:mask", expand="param:pixels", tapered_corners="const:true"
    ),
    "InvertMask": _simple("InvertMask", mask="link:mask"),
    "InpaintComposite": _export_composite,
}


# Studio nodes that ComfyUI does without when they change nothing: output port -> input port.
_PASS_THROUGH = {
    "Region": {"image": "image", "mask": "mask"},
    "ScaleToRegion": {"image": "image"},
}


def _export_pass_through(ex: _Exporter, node: Node) -> None:
    if node.type == "Region" and ex.param(node, "width") and ex.param(node, "height"):
        ex.problems.append(
            f"{ex.where(node)} works on part of the picture, which ComfyUI's core nodes cannot "
            "do: set it to the whole picture (width and height 0)"
        )


_EXPORTERS.update(ADDON_EXPORTERS)
_EXPORTERS["Region"] = _export_pass_through
_EXPORTERS["ScaleToRegion"] = _export_pass_through


def export_comfyui(graph: Graph) -> dict[str, dict[str, Any]]:
    """The graph as a ComfyUI API-format workflow; every node must have a ComfyUI equivalent."""
    ex = _Exporter(graph)
    missing = [ex.where(n) for n in graph.nodes.values() if n.type not in _EXPORTERS]
    if missing:
        hint = ""
        if any(n.type in ("CanvasImage", "CanvasMask") for n in graph.nodes.values()):
            hint = " Replace the canvas inputs with Load image nodes to export it."
        raise WorkflowError(
            f"This workflow uses nodes ComfyUI does not have: {', '.join(missing)}.{hint}"
        )
    for node in graph.nodes.values():
        _EXPORTERS[node.type](ex, node)
    if ex.problems:
        raise WorkflowError(
            f"Studio cannot export this workflow to ComfyUI: {'; '.join(ex.problems)}."
        )
    return dict(sorted(ex.out.items(), key=lambda item: _id_order(item[0])))
