"""ComfyUI's API-format "prompt": the node graph a ComfyUI image was made with."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from studio.errors import ImageError
from studio.formats.a1111 import _float, _guess_sampler, _int
from studio.formats.parameters import GenerationParams


# Also used by studio.formats.metadata for its error messages.
def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


_COMFY_PLAIN = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "dpmpp_2m": "DPM++ 2M",
    "ddim": "DDIM",
    "uni_pc": "UniPC",
    "uni_pc_bh2": "UniPC",
    "lms": "LMS",
    "lcm": "LCM",
}
_COMFY_KARRAS = {
    "dpmpp_2m": "DPM++ 2M Karras",
    "dpmpp_sde": "DPM++ SDE Karras",
    "dpmpp_sde_gpu": "DPM++ SDE Karras",
}
_COMFY_PLAIN_SCHEDULES = ("normal", "simple", "sgm_uniform", "ddim_uniform")
_TEXT_INPUTS = ("text", "text_g", "t5xxl", "clip_l", "prompt")
_VALUE_INPUTS = ("value", "text", "string", "prompt", "seed", "noise_seed", "int", "float")
_MAX_DEPTH = 50


def from_comfyui_prompt(prompt_json: str | dict[str, Any]) -> GenerationParams:
    """Parameters from a ComfyUI API-format "prompt" (node id -> class_type and inputs)."""
    return _comfyui(prompt_json, "the ComfyUI settings")[0]


def sampler_from_comfyui(sampler_name: str, scheduler: str = "normal") -> tuple[str, bool]:
    """Our sampler for a ComfyUI sampler_name + scheduler, and whether it is an exact match."""
    if scheduler == "karras" and sampler_name in _COMFY_KARRAS:
        return _COMFY_KARRAS[sampler_name], True
    if scheduler in _COMFY_PLAIN_SCHEDULES and sampler_name in _COMFY_PLAIN:
        return _COMFY_PLAIN[sampler_name], True
    return _guess_sampler(f"{sampler_name} {scheduler}"), False


def sampler_to_comfyui(sampler: str) -> tuple[str, str] | None:
    """ComfyUI's sampler_name and scheduler for one of our samplers; None if it has none."""
    for table, scheduler in ((_COMFY_KARRAS, "karras"), (_COMFY_PLAIN, "normal")):
        # The first ComfyUI name listed for a sampler is its usual one.
        for name, ours in table.items():
            if ours == sampler:
                return name, scheduler
    return None


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


class _Graph:
    def __init__(self, nodes: dict[str, Any]) -> None:
        self.nodes = {
            str(key): {**node, "inputs": node.get("inputs") or {}}
            for key, node in nodes.items()
            if isinstance(node, dict) and isinstance(node.get("inputs") or {}, dict)
        }

    def linked(self, value: Any) -> dict[str, Any] | None:
        return self.nodes.get(str(value[0])) if _is_link(value) else None

    def value(self, value: Any, names: Iterable[str] = (), depth: int = 0) -> Any:
        """A literal input, following links to primitive nodes that hold the value."""
        node = self.linked(value)
        if node is None or depth > _MAX_DEPTH:
            return None if _is_link(value) else value
        inputs = node.get("inputs", {})
        for name in (*names, *_VALUE_INPUTS):
            if name in inputs:
                return self.value(inputs[name], names, depth + 1)
        return None

    def text(self, value: Any, role: str, depth: int = 0) -> str | None:
        """The prompt behind a conditioning input, through pass-through nodes."""
        node = self.linked(value)
        if node is None or depth > _MAX_DEPTH:
            return None
        inputs = node.get("inputs", {})
        for name in _TEXT_INPUTS:
            if name in inputs:
                text = self.value(inputs[name], (name,))
                if isinstance(text, str):
                    return text
        for name in (role, "conditioning", "conditioning_to", "conditioning_1", "cond"):
            if _is_link(inputs.get(name)):
                return self.text(inputs[name], role, depth + 1)
        return None


def _comfyui(prompt: str | dict[str, Any], where: str) -> tuple[GenerationParams, bool]:
    """Parameters, and whether the image size was found in the graph."""
    if isinstance(prompt, str):
        try:
            prompt = json.loads(prompt)
        except (ValueError, RecursionError) as exc:
            raise ImageError(f"{_cap(where)} are not valid JSON.") from exc
    if not isinstance(prompt, dict):
        raise ImageError(f"{_cap(where)} are not a ComfyUI prompt.")
    graph = _Graph(prompt)
    samplers = [key for key, node in graph.nodes.items() if "latent_image" in node["inputs"]]
    if not samplers:
        raise ImageError(f"{_cap(where)} contain no sampler node Studio recognises.")
    first_pass = [
        key
        for key in samplers
        if not _read_latent_chain(graph, graph.nodes[key]["inputs"].get("latent_image"), {})
    ]
    key = sorted(first_pass or samplers, key=lambda k: (not k.isdigit(), k.zfill(12)))[0]
    inputs = _sampling_inputs(graph, graph.nodes[key])
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}

    def number(name: str, kind: Callable[[str], Any]) -> Any:
        raw = graph.value(inputs.get(name), (name,))
        try:
            return None if raw is None or isinstance(raw, bool) else kind(str(raw))
        except ValueError:
            return None

    for attribute, names, kind in (
        ("seed", ("seed", "noise_seed"), _int),
        ("steps", ("steps",), _int),
        ("cfg_scale", ("cfg",), _float),
    ):
        for name in names:
            if (found := number(name, kind)) is not None:
                values[attribute] = found
                break
    for attribute, role in (("prompt", "positive"), ("negative_prompt", "negative")):
        text = graph.text(inputs.get(role), role)
        if text is not None:
            values[attribute] = text
    sampler_name = str(graph.value(inputs.get("sampler_name"), ("sampler_name",)) or "")
    scheduler = str(graph.value(inputs.get("scheduler"), ("scheduler",)) or "normal")
    if sampler_name:
        values["sampler"], exact = sampler_from_comfyui(sampler_name, scheduler)
        if not exact:
            extra["ComfyUI sampler"], extra["ComfyUI scheduler"] = sampler_name, scheduler
    _read_model_chain(graph, inputs.get("model"), values, extra)

    _read_latent_chain(graph, inputs.get("latent_image"), values)
    mode = values["mode"]
    denoise = number("denoise", _float)
    start, steps = number("start_at_step", _int), values.get("steps")
    if denoise is None and start and steps:
        denoise = max(0.0, 1.0 - start / steps)
    if mode != "txt2img":
        values["strength"] = 1.0 if denoise is None else denoise
    elif denoise is not None and denoise != 1.0:
        extra["Denoising strength"] = denoise
    values["extra"] = extra
    return GenerationParams(**values), "width" in values


def _sampling_inputs(graph: _Graph, node: dict[str, Any]) -> dict[str, Any]:
    """A sampler's inputs merged with those of its guider, sampler, sigmas and noise nodes."""
    inputs = dict(node["inputs"])
    for name in ("guider", "sampler", "sigmas", "noise"):
        part = graph.linked(inputs.get(name))
        if part is None:
            continue
        if name == "sigmas" and "karras" in str(part.get("class_type", "")).lower():
            inputs.setdefault("scheduler", "karras")
        if name == "guider" and "conditioning" in part["inputs"]:
            inputs.setdefault("positive", part["inputs"]["conditioning"])
        for key, value in part["inputs"].items():
            inputs.setdefault(key, value)
    return inputs


def _read_model_chain(
    graph: _Graph, link: Any, values: dict[str, Any], extra: dict[str, Any]
) -> None:
    """Checkpoint name, LoRAs, PAG and CFG rescale along the model input."""
    loras: list[str] = []
    for _ in range(_MAX_DEPTH):
        node = graph.linked(link)
        if node is None:
            break
        kind, inputs = str(node.get("class_type", "")), node["inputs"]
        name = next((inputs[k] for k in ("ckpt_name", "unet_name") if k in inputs), None)
        if isinstance(name, str):
            values["model"] = name
            break
        if "lora_name" in inputs:
            loras.append(f"{inputs['lora_name']}:{inputs.get('strength_model', 1)}")
        if kind == "PerturbedAttentionGuidance" and isinstance(inputs.get("scale"), int | float):
            values["pag_scale"] = float(inputs["scale"])
        if kind == "RescaleCFG" and isinstance(inputs.get("multiplier"), int | float):
            values["guidance_rescale"] = float(inputs["multiplier"])
        link = inputs.get("model")
    if loras:
        extra["ComfyUI LoRAs"] = ", ".join(loras)


def _read_latent_chain(graph: _Graph, link: Any, values: dict[str, Any]) -> bool:
    """Mode, size, batch size and mask growth along a latent input; True if a sampler feeds it."""
    values["mode"] = "txt2img"
    for _ in range(_MAX_DEPTH):
        node = graph.linked(link)
        if node is None:
            break
        kind, inputs = str(node.get("class_type", "")), node["inputs"]
        if "latent_image" in inputs:
            return True
        if "Inpaint" in kind or "mask" in inputs:
            values["mode"] = "inpaint"
        elif ("pixels" in inputs or kind.startswith("VAEEncode")) and values["mode"] == "txt2img":
            values["mode"] = "img2img"
        grow = graph.value(inputs.get("grow_mask_by"))
        if isinstance(grow, int) and not isinstance(grow, bool):
            values.setdefault("mask_grow", grow)
        width, height = graph.value(inputs.get("width")), graph.value(inputs.get("height"))
        if "width" not in values and isinstance(width, int) and isinstance(height, int):
            values["width"], values["height"] = width, height
            count = graph.value(inputs.get("batch_size"))
            if isinstance(count, int) and not isinstance(count, bool):
                values["batch_size"] = count
        link = next((inputs[k] for k in ("samples", "latent") if _is_link(inputs.get(k))), None)
    return False
