"""Putting LoRA, VAE and CLIP-skip nodes into a workflow (CLI flags, restored A1111 PNGs, the
window's LoRA list): each goes between the checkpoint loader and everything it fed."""

from __future__ import annotations

from dataclasses import dataclass

from studio.graph.document import Graph, Node

ADDON_TYPES = ("LoRA", "LoadVAE", "ClipSkip")


@dataclass(frozen=True)
class LoraChoice:
    path: str
    strength: float = 1.0
    text_strength: float | None = None  # None: the same as strength


def parse_lora_flag(value: str) -> LoraChoice:
    """`PATH[:STRENGTH[:TEXT_STRENGTH]]`; a Windows drive letter is not a strength."""
    parts = value.rsplit(":", 2)
    numbers: list[float] = []
    while len(parts) > 1:
        try:
            number = float(parts[-1])
        except ValueError:
            break
        numbers.insert(0, number)
        parts.pop()
    path = ":".join(parts)
    if not path:
        raise ValueError(f"no file in --lora {value!r}")
    strength = numbers[0] if numbers else 1.0
    text = numbers[1] if len(numbers) > 1 else None
    return LoraChoice(path, strength, text)


def _insert_after(graph: Graph, loader: str, node_type: str, params: dict, title: str) -> str:
    node_id = graph.new_id(node_type.lower())
    x, y = graph.nodes[loader].position
    count = sum(1 for n in graph.nodes.values() if n.type in ADDON_TYPES)
    graph.add(Node(node_id, node_type, dict(params), (x + 40 * (count + 1), y + 140), title))
    for link in graph.consumers_of(loader):
        if link.src_port == "model":
            graph.connect(node_id, "model", link.dst, link.dst_port)
    graph.connect(loader, "model", node_id, "model")
    return node_id


def add_model_addons(
    graph: Graph,
    *,
    loras: list[LoraChoice] = (),
    vae: str | None = None,
    clip_skip: int | None = None,
) -> Graph:
    """Add the nodes after every checkpoint loader of `graph` (edited in place and returned)."""
    for loader in [n.id for n in graph.find("LoadCheckpoint")]:
        if clip_skip is not None and clip_skip > 1:
            _insert_after(graph, loader, "ClipSkip", {"clip_skip": int(clip_skip)}, "CLIP skip")
        if vae:
            _insert_after(graph, loader, "LoadVAE", {"path": vae}, "VAE")
        for lora in reversed(list(loras)):
            text = lora.strength if lora.text_strength is None else lora.text_strength
            params = {"path": lora.path, "strength": lora.strength, "text_strength": text}
            _insert_after(graph, loader, "LoRA", params, "LoRA")
    return graph
