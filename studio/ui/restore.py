"""Restore parameters: put the settings stored in an image back into the open workflow.

Our own PNGs carry the whole workflow, which is loaded as it was. Others (A1111, ComfyUI, or
ours without a workflow) carry GenerationParams, which are mapped by node type onto the
workflow of the image's mode: prompts, seed, steps, sampler, guidance, size, strength, mask
settings and upscale factor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.formats.parameters import MODES, GenerationParams
from studio.graph.document import Graph
from studio.ui.document import WorkflowDocument

log = logging.getLogger(__name__)

# Node type -> (param, GenerationParams field) pairs copied as they are.
_DIRECT: dict[str, tuple[tuple[str, str], ...]] = {
    "Sample": (
        ("seed", "seed"),
        ("steps", "steps"),
        ("sampler", "sampler"),
        ("cfg_scale", "cfg_scale"),
        ("guidance_rescale", "guidance_rescale"),
        ("pag_scale", "pag_scale"),
        ("cfg_cutoff", "cfg_cutoff"),
    ),
    "EmptyLatent": (("width", "width"), ("height", "height"), ("batch_size", "batch_size")),
    "GrowMask": (("pixels", "mask_grow"),),
    "FeatherMask": (("pixels", "mask_feather"),),
    "CropToMask": (("enabled", "masked_only"), ("padding", "masked_padding")),
    "InpaintComposite": (("color_match", "color_match"),),
}


def mode_of(params: GenerationParams) -> str:
    return params.mode if params.mode in MODES else "txt2img"


def values_for(
    graph: Graph,
    specs: dict[str, Any],
    params: GenerationParams,
    find_model: Callable[[str], str | None] = lambda name: None,
) -> tuple[dict[tuple[str, str], Any], list[str]]:
    """The (node, param) -> value changes that put `params` into `graph`, and notes for the user."""
    values: dict[tuple[str, str], Any] = {}
    notes: list[str] = []
    for node in graph.nodes.values():
        spec = specs.get(node.type)
        if spec is None:
            continue
        pairs = list(_DIRECT.get(node.type, ()))
        if node.type == "Sample" and params.strength is not None:
            pairs.append(("denoise", "strength"))
        if node.type == "Resize" and params.upscale_factor:
            pairs.append(("scale", "upscale_factor"))
        for name, attribute in pairs:
            param = spec.param(name)
            value = getattr(params, attribute)
            if param is None:
                continue
            if param.kind == "float" and isinstance(value, int):
                value = float(value)
            if param.check(value) is None:
                values[(node.id, name)] = value
            else:
                notes.append(f"{param.title} {value!r} does not fit this workflow; kept.")
        if node.type == "LoadCheckpoint" and params.model:
            path = find_model(params.model)
            if path:
                values[(node.id, "path")] = path
                values[(node.id, "config")] = ""
            else:
                notes.append(f"Model '{params.model}' was not found; kept the current one.")
    for sample in graph.find("Sample"):
        links = graph.inputs_of(sample.id)
        for port, text in (("positive", params.prompt), ("negative", params.negative_prompt)):
            link = links.get(port)
            if link is not None and graph.nodes[link.src].type == "Prompt":
                values[(link.src, "text")] = text
    return values, notes


def apply(document: WorkflowDocument, values: dict[tuple[str, str], Any]) -> None:
    """Set the values as one undo step."""
    stack = document.undo_stack
    stack.beginMacro("Restore parameters")
    try:
        for (node_id, name), value in values.items():
            document.set_param(node_id, name, value)
    finally:
        stack.endMacro()


def model_finder(choices: list[Any]) -> Callable[[str], str | None]:
    """Find a stored model name (a path, a file name, or A1111's name without suffix)."""

    def find(name: str) -> str | None:
        if Path(name).expanduser().exists():
            return str(Path(name).expanduser())
        stem = Path(name).stem.lower()
        for choice in choices:
            if (
                Path(choice.path).stem.lower() == stem
                or Path(choice.path).name.lower() == name.lower()
            ):
                return choice.path
        return None

    return find
