"""What made an image on a server, as Studio records it in the image's metadata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from studio.formats.parameters import GenerationParams
from studio.graph.document import Graph


@dataclass(frozen=True)
class Made:
    """Where and as which image of its batch a picture was made."""

    server: str  # the server's URL, recorded as "Server"
    index: int  # image i of the batch (seed + i)
    count: int  # images in the batch
    models: dict[str, str] = field(default_factory=dict)  # ComfyUI input -> the server's file


def generation_params(
    graph: Graph, remote: Sequence[str], made: Made, size: tuple[int, int]
) -> GenerationParams:
    """The generation parameters of a picture the server's part of `graph` made."""
    from studio.nodes.registry import specs

    nodes = [graph.nodes[i] for i in remote]
    types = {n.type for n in nodes}
    samples = [n for n in nodes if n.type == "Sample"]
    mode = (
        "inpaint"
        if "SetLatentMask" in types
        else "txt2img"  # a hires fix encodes its first image again: still text to image
        if "EmptyLatent" in types
        else "img2img"
        if samples
        else "upscale"
    )
    width, height = size
    extra = {"Server": made.server}
    if not samples:
        upscaler = made.models.get("model_name", "")
        return GenerationParams(
            mode=mode, width=width, height=height, upscaler=upscaler, extra=extra
        )
    sample = samples[-1]  # a hires fix: its second pass
    p = {**specs()["Sample"].defaults(), **sample.params}
    links = graph.inputs_of(sample.id)

    def text(port: str) -> str:
        link = links.get(port)
        node = graph.nodes.get(link.src) if link else None
        return str(node.params.get("text", "")) if node and node.type == "Prompt" else ""

    return GenerationParams(
        mode=mode,
        prompt=text("positive"),
        negative_prompt=text("negative"),
        steps=p["steps"],
        sampler=p["sampler"],
        cfg_scale=p["cfg_scale"],
        guidance_rescale=p["guidance_rescale"],
        pag_scale=p["pag_scale"],
        seed=p["seed"],
        width=width,
        height=height,
        batch_size=made.count,
        batch_index=made.index,
        strength=None if mode == "txt2img" else p["denoise"],
        model=made.models.get("ckpt_name", ""),
        extra=extra,
    )
