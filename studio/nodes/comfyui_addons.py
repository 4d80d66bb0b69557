"""ComfyUI's LoraLoader, LoraLoaderModelOnly, CLIPSetLastLayer and VAELoader, both ways.

ComfyUI keeps MODEL, CLIP and VAE apart; Studio passes one `model` along which each add-on
patches. On import each of these nodes becomes its Studio node on the one model chain (a
VAELoader, which takes no input, is put after the workflow's checkpoint). On export the chain
is split again: a consumer wanting the CLIP, say, is linked to the nearest add-on that gives
one (LoraLoader's second output, CLIPSetLastLayer), walking past those that do not.
"""

from __future__ import annotations

from typing import Any

# Studio add-on type -> {what a ComfyUI input wants: output index of the exported node};
# a wanted kind not listed is found further up the chain.
ROUTES: dict[str, dict[str, int]] = {
    "LoRA": {"MODEL": 0, "CLIP": 1},
    "ClipSkip": {"CLIP": 0},
    "LoadVAE": {"VAE": 0},
}


# --- import -------------------------------------------------------------------------------


def _lora(im, cid: str, inputs: dict[str, Any], model_only: bool = False) -> None:
    from studio.nodes.comfyui import _MISSING

    params = {
        "path": im.value(cid, inputs, "lora_name", str, _MISSING),
        "strength": im.value(cid, inputs, "strength_model", float, 1.0),
        "text_strength": 0.0 if model_only else im.value(cid, inputs, "strength_clip", float, 1.0),
    }
    outputs = ("model",) if model_only else ("model", "model")
    model, clip = inputs.get("model"), inputs.get("clip")
    if not model_only and isinstance(model, list) and isinstance(clip, list):
        if str(model[0]) != str(clip[0]):
            im.problems.append(
                f"{im.where(cid)} takes its CLIP from another node than its MODEL, which "
                "Studio's one model chain cannot express (put CLIP Set Last Layer after it)"
            )
    node = im.add(cid, "LoRA", params, outputs)
    # Studio's chain is one model: the MODEL input decides where the LoRA goes.
    im.link(node, "model", cid, inputs, "model")


def _lora_model_only(im, cid: str, inputs: dict[str, Any]) -> None:
    _lora(im, cid, inputs, model_only=True)


def _clip_set_last_layer(im, cid: str, inputs: dict[str, Any]) -> None:
    layer = im.value(cid, inputs, "stop_at_clip_layer", int, -1)
    if not -12 <= layer <= -1:
        im.problems.append(f"{im.where(cid)} stops at layer {layer}; Studio takes -1 to -12")
        layer = -1
    node = im.add(cid, "ClipSkip", {"clip_skip": -layer}, ("model",))
    im.link(node, "model", cid, inputs, "clip")


def _vae_loader(im, cid: str, inputs: dict[str, Any]) -> None:
    from studio.nodes.comfyui import _MISSING

    path = im.value(cid, inputs, "vae_name", str, _MISSING)
    node = im.add(cid, "LoadVAE", {"path": path}, ("model",))
    loaders = [c for c, n in im.prompt.items() if n.get("class_type") == "CheckpointLoaderSimple"]
    if not loaders:
        im.problems.append(f"{im.where(cid)} needs a checkpoint in the workflow to replace its VAE")
        return
    im.link(node, "model", cid, {"model": [sorted(loaders)[0], 2]}, "model")


IMPORTERS = {
    "LoraLoader": _lora,
    "LoraLoaderModelOnly": _lora_model_only,
    "CLIPSetLastLayer": _clip_set_last_layer,
    "VAELoader": _vae_loader,
}
DEFAULT_TITLES = ("Load LoRA", "LoraLoaderModelOnly", "CLIP Set Last Layer", "Load VAE")


# --- export -------------------------------------------------------------------------------


def _export_lora(ex, node) -> None:
    from studio.nodes.comfyui_export import _file_name

    strength, text = ex.param(node, "strength"), ex.param(node, "text_strength")
    inputs = {
        "model": ex.link(node, "model", "MODEL"),
        "lora_name": _file_name(ex.param(node, "path")),
        "strength_model": strength,
    }
    if text == 0:
        ex.emit(node, "LoraLoaderModelOnly", inputs)
        return
    inputs.update(clip=ex.link(node, "model", "CLIP"), strength_clip=text)
    ex.emit(node, "LoraLoader", inputs)


def _export_clip_skip(ex, node) -> None:
    skip = ex.param(node, "clip_skip")
    inputs = {"clip": ex.link(node, "model", "CLIP"), "stop_at_clip_layer": -int(skip)}
    ex.emit(node, "CLIPSetLastLayer", inputs)


def _export_vae(ex, node) -> None:
    from studio.nodes.comfyui_export import _file_name

    ex.emit(node, "VAELoader", {"vae_name": _file_name(ex.param(node, "path"))})


EXPORTERS = {"LoRA": _export_lora, "ClipSkip": _export_clip_skip, "LoadVAE": _export_vae}


def route(graph, link, source, wants: str):
    """Walk up the model chain past add-ons that do not give `wants`.

    Returns the (link, source node, output index or None) to use; None: the caller decides
    the index (a checkpoint loader's, say).
    """
    seen = 0
    while source.type in ROUTES and wants not in ROUTES[source.type] and seen < len(graph.nodes):
        up = graph.inputs_of(source.id).get("model")
        if up is None or up.src not in graph.nodes:
            return link, source, 0
        link, source = up, graph.nodes[up.src]
        seen += 1
    if source.type in ROUTES:
        return link, source, ROUTES[source.type][wants]
    return link, source, None
