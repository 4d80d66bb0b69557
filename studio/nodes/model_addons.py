"""Putting LoRA, VAE and CLIP-skip nodes into a workflow (CLI flags, restored A1111 PNGs, the
window's LoRA list): each goes between the checkpoint loader and everything it fed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def _strength(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def restore_addons(
    graph: Graph, prompt: str, extra: dict, find: Callable[[str, str], str | None]
) -> list[str]:
    """Put the add-ons stored in an image's A1111 parameters into `graph` (in place).

    `extra` holds the parameters' other keys (`Clip skip`, `VAE`, `Lora hashes`, Studio's
    `LoRAs`); `<lora:...>` tags stay in the prompt, which applies them. `find(name, kind)`
    gives a file's path from the model folders, or None. Returns notes for the user, naming
    what is missing. Add-on nodes already in the graph are replaced.
    """
    from studio.formats.prompt_syntax import extract_loras

    notes: list[str] = []
    for node in [n for n in graph.nodes.values() if n.type in ADDON_TYPES]:
        remove_addon(graph, node.id)
    _, tags = extract_loras(prompt)
    for tag in tags:
        if find(tag.name, "lora") is None:
            notes.append(f"LoRA '{tag.name}' (in the prompt) is not in the model folders.")
    loras: list[LoraChoice] = []
    for item in str(extra.get("LoRAs", "")).split(","):
        parts = item.strip().rsplit(":", 2)
        if len(parts) != 3 or None in (_strength(parts[1]), _strength(parts[2])):
            continue
        path = find(parts[0], "lora")
        if path is None:
            notes.append(f"LoRA '{parts[0]}' is not in the model folders; left out.")
            continue
        loras.append(LoraChoice(path, float(parts[1]), float(parts[2])))
    named = {tag.name for tag in tags} | {Path(lo.path).stem for lo in loras}
    for item in str(extra.get("Lora hashes", "")).split(","):
        name = item.split(":")[0].strip()
        if name and name not in named and find(name, "lora") is None:
            notes.append(f"LoRA '{name}' is not in the model folders.")
    vae = None
    if extra.get("VAE"):
        vae = find(str(extra["VAE"]), "vae")
        if vae is None:
            notes.append(
                f"VAE '{extra['VAE']}' is not in the model folders; the model's own is used."
            )
    clip_skip = None
    try:
        clip_skip = int(str(extra.get("Clip skip", "1")).strip())
    except ValueError:
        notes.append(f"Clip skip {extra.get('Clip skip')!r} is not a number; left at 1.")
    if clip_skip is not None and not 1 <= clip_skip <= 12:
        notes.append(f"Clip skip {clip_skip} is out of range; left at 1.")
        clip_skip = None
    add_model_addons(graph, loras=loras, vae=vae, clip_skip=clip_skip)
    return notes


def remove_addon(graph: Graph, node_id: str) -> Graph:
    """Remove an add-on node, linking what fed it to what it fed."""
    source = graph.inputs_of(node_id).get("model")
    consumers = graph.consumers_of(node_id)
    graph.remove(node_id)
    if source is not None:
        for link in consumers:
            graph.connect(source.src, source.src_port, link.dst, link.dst_port)
    return graph


def folder_finder(roots) -> Callable[[str, str], str | None]:
    """`find(name, kind)` for restore_addons: LoRAs and VAEs by name in the model folders."""
    from studio.engine.folders import find_file
    from studio.nodes.library.addons import LORA_SUFFIXES, VAE_SUFFIXES

    roots = list(roots)
    suffixes = {"lora": LORA_SUFFIXES, "vae": VAE_SUFFIXES}

    def find(name: str, kind: str) -> str | None:
        path = Path(name).expanduser()
        if path.is_absolute() and path.exists():
            return str(path)
        found = find_file(name, kind, roots, suffixes[kind])
        return str(found) if found is not None else None

    return find
