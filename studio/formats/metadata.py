"""Generation settings stored in images: ours, AUTOMATIC1111's "parameters", ComfyUI's "prompt"."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from studio.errors import ImageError
from studio.formats.parameters import MODES, SAMPLERS, GenerationParams

log = logging.getLogger(__name__)

STUDIO_KEY = "studio"
A1111_KEY = "parameters"
COMFYUI_KEY = "prompt"
STUDIO_VERSION = 1

_DEFAULTS = GenerationParams()
# Text chunks after the pixel data are only found by decoding; skip that for huge images.
_MAX_PIXELS_FOR_TRAILING_TEXT = 64 * 1024 * 1024


@dataclass(frozen=True)
class StudioMetadata:
    """The contents of our own "studio" text chunk."""

    params: GenerationParams
    workflow: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    version: int = STUDIO_VERSION


@dataclass(frozen=True)
class ImageMetadata:
    """Generation settings found in an image, and which program wrote them."""

    params: GenerationParams
    source: str  # "studio" | "a1111" | "comfyui"
    workflow: dict[str, Any] | None
    raw: str
    versions: dict[str, str] = field(default_factory=dict)


# --- AUTOMATIC1111 "parameters" -----------------------------------------------------------

_NEGATIVE = "Negative prompt:"
_PAIR = re.compile(r'\s*([A-Za-z][\w \-/().+\']*?)\s*:\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_KEY_OK = re.compile(r"[A-Za-z][\w \-/().+']*\Z")
_SIZE = re.compile(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*")
# Other spellings of keys we understand, normalised (lower case, no spaces, dashes or underscores).
_ALIASES = {
    "cfgrescale": "guidancerescale",
    "cfgrescalephi": "guidancerescale",
    "postprocessupscaler": "upscaler",
    "postprocessupscaleby": "upscalefactor",
}
_SPECIAL = {"sampler", "scheduletype", "seed", "batchpos", "size", "denoisingstrength", "mode"}
_MASK_KEYS = {"maskblur", "maskgrow", "inpaintarea", "maskedareapadding", "colormatch"}


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        number = _float(text)
        if not number.is_integer():
            raise
        return int(number)


def _float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(text)
    return number


def _bool(text: str) -> bool:
    if text.strip().lower() not in ("true", "false"):
        raise ValueError(text)
    return text.strip().lower() == "true"


# Normalised key -> (field, reader); the A1111 spelling we write is in to_a1111.
_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "steps": ("steps", _int),
    "cfgscale": ("cfg_scale", _float),
    "guidancerescale": ("guidance_rescale", _float),
    "pagscale": ("pag_scale", _float),
    "cfgcutoff": ("cfg_cutoff", _float),
    "model": ("model", str),
    "modelfamily": ("model_family", str),
    "batchsize": ("batch_size", _int),
    "maskblur": ("mask_feather", _int),
    "maskgrow": ("mask_grow", _int),
    "inpaintarea": ("masked_only", lambda text: text.strip().lower() == "only masked"),
    "maskedareapadding": ("masked_padding", _int),
    "colormatch": ("color_match", _bool),
    "upscaler": ("upscaler", str),
    "upscalefactor": ("upscale_factor", _float),
    "noiselevel": ("noise_level", _int),
}


def _norm(key: str) -> str:
    plain = re.sub(r"[\s_\-]+", "", key.lower())
    return _ALIASES.get(plain, plain)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _quote(text: str) -> str:
    if any(c in text for c in ',:"\n\r') or text != text.strip():
        return json.dumps(text, ensure_ascii=False)
    return text


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)
        except ValueError:
            return text
        return value if isinstance(value, str) else text
    return text


def _infer_mode(keys: set[str]) -> str:
    if "upscaler" in keys:
        return "upscale"
    if "denoisingstrength" not in keys or any(key.startswith("hires") for key in keys):
        return "txt2img"
    return "inpaint" if keys & _MASK_KEYS else "img2img"


def to_a1111(params: GenerationParams) -> str:
    """The AUTOMATIC1111 "parameters" text: prompt, negative prompt, then one settings line."""
    p, d = params, _DEFAULTS
    # Like A1111, "Seed" is this image's own seed; "Batch pos" recovers the batch's base seed.
    items: list[tuple[str, Any]] = [
        ("Steps", p.steps),
        ("Sampler", p.sampler),
        ("CFG scale", p.cfg_scale),
        ("Seed", p.seed + p.batch_index),
        ("Size", f"{p.width}x{p.height}"),
    ]
    optional: list[tuple[str, Any, bool]] = [
        ("Model", p.model, bool(p.model)),
        ("Model family", p.model_family, bool(p.model_family)),
        ("Denoising strength", p.strength, p.strength is not None),
        ("Guidance rescale", p.guidance_rescale, p.guidance_rescale != d.guidance_rescale),
        ("PAG scale", p.pag_scale, p.pag_scale != d.pag_scale),
        ("CFG cut-off", p.cfg_cutoff, p.cfg_cutoff != d.cfg_cutoff),
        ("Mask blur", p.mask_feather, p.mode == "inpaint" or p.mask_feather != d.mask_feather),
        ("Mask grow", p.mask_grow, p.mask_grow != d.mask_grow),
        ("Inpaint area", "Only masked" if p.masked_only else "Whole picture", p.masked_only),
        ("Masked area padding", p.masked_padding, p.masked_padding != d.masked_padding),
        ("Color match", p.color_match, p.color_match),
        ("Upscaler", p.upscaler, bool(p.upscaler)),
        ("Upscale factor", p.upscale_factor, p.upscale_factor != d.upscale_factor),
        ("Noise level", p.noise_level, p.noise_level != d.noise_level),
        ("Batch size", p.batch_size, p.batch_size != 1 or p.batch_index != 0),
        ("Batch pos", p.batch_index, p.batch_size != 1 or p.batch_index != 0),
    ]
    items += [(key, value) for key, value, wanted in optional if wanted]
    written = {_norm(key) for key, _ in items}
    for key, value in p.extra.items():
        if not isinstance(key, str) or not _KEY_OK.match(key.strip()) or _norm(key) in written:
            log.debug("Not writing extra key %r to A1111 parameters.", key)
            continue
        items.append((key.strip(), value))
        written.add(_norm(key))
    if _infer_mode(written) != p.mode:
        items.append(("Mode", p.mode))
    lines = [p.prompt] if p.prompt else []
    if p.negative_prompt:
        lines.append(f"{_NEGATIVE} {p.negative_prompt}")
    lines.append(", ".join(f"{key}: {_quote(_fmt(value))}" for key, value in items))
    return "\n".join(lines)


def from_a1111(text: str) -> GenerationParams:
    """Parse AUTOMATIC1111 "parameters" text (old and new styles); unknown keys go to extra."""
    lines = text.replace("\r\n", "\n").strip().split("\n")
    pairs: list[tuple[str, str]] = []
    found = _PAIR.findall(lines[-1])
    # Like A1111: the last line holds the settings if it has three "key: value" pairs or more.
    if len(found) >= 3 and any(_norm(key) in _FIELDS or _norm(key) in _SPECIAL for key, _ in found):
        pairs = [(key.strip(), _unquote(value)) for key, value in found]
        lines = lines[:-1]
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        if not negative and line.lstrip().startswith(_NEGATIVE):
            negative.append(line.lstrip()[len(_NEGATIVE) :])
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)
    values: dict[str, Any] = {
        "prompt": "\n".join(prompt).strip(),
        "negative_prompt": "\n".join(negative).strip(),
    }
    extra: dict[str, Any] = {}
    special: dict[str, tuple[str, str]] = {}
    for key, value in pairs:
        name = _norm(key)
        if name in _SPECIAL and name not in special:
            special[name] = (key, value)
        elif name in _FIELDS and _FIELDS[name][0] not in values:
            attribute, read = _FIELDS[name]
            try:
                values[attribute] = read(value)
            except ValueError:
                extra[key] = value
        else:
            extra[key] = value

    def take(name: str, read: Callable[[str], Any]) -> Any:
        if name not in special:
            return None
        key, value = special.pop(name)
        try:
            return read(value)
        except ValueError:
            extra[key] = value
            return None

    if (size := take("size", _size)) is not None:
        values["width"], values["height"] = size
    seed, position = take("seed", _int), take("batchpos", _int)
    if position is not None:
        values["batch_index"] = position
    if seed is not None:
        values["seed"] = seed - (position or 0)
    if "sampler" in special:
        sampler_text = special.pop("sampler")[1].strip()
        schedule = special.pop("scheduletype", ("", ""))[1].strip()
        if schedule.lower() not in ("", "automatic") and not sampler_text.lower().endswith(
            schedule.lower()
        ):
            sampler_text = f"{sampler_text} {schedule}"
        values["sampler"], exact = _match_sampler(sampler_text)
        if not exact:
            extra["Original sampler"] = sampler_text
    values["mode"] = take("mode", _mode) or _infer_mode({_norm(key) for key, _ in pairs})
    if "denoisingstrength" in special:
        key, value = special.pop("denoisingstrength")
        try:
            strength = _float(value)
        except ValueError:
            strength = None
        if strength is not None and values["mode"] in ("img2img", "inpaint"):
            values["strength"] = strength
        else:  # e.g. the hires fix pass of a text-to-image generation
            extra[key] = value
    for key, value in special.values():
        extra[key] = value
    return GenerationParams(**values, extra=extra)


def _size(text: str) -> tuple[int, int]:
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(text)
    return int(match[1]), int(match[2])


def _mode(text: str) -> str:
    if text.strip() not in MODES:
        raise ValueError(text)
    return text.strip()


def _match_sampler(name: str) -> tuple[str, bool]:
    """Our sampler name for a name written by another program, and whether it is exact."""
    for known in SAMPLERS:
        if known.lower() == name.strip().lower():
            return known, True
    return _guess_sampler(name), False


def _guess_sampler(name: str) -> str:
    text = name.lower().replace("_", " ")
    for token, sampler in (("lcm", "LCM"), ("uni", "UniPC"), ("ddim", "DDIM"), ("lms", "LMS")):
        if token in text:
            return sampler
    if "heun" in text:
        return "Heun"
    if "euler" in text:
        return "Euler a" if re.search(r"ancestral|euler a\b", text) else "Euler"
    if "dpm" in text:
        if "sde" in text:
            return "DPM++ SDE Karras"
        return "DPM++ 2M Karras" if "karras" in text else "DPM++ 2M"
    return _DEFAULTS.sampler


# --- our own "studio" chunk -----------------------------------------------------------------

# Version n -> a function turning a version-n document into a version n+1 document.
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def studio_chunk(
    params: GenerationParams,
    workflow: dict[str, Any] | None = None,
    versions: dict[str, str] | None = None,
) -> str:
    """The JSON text of our "studio" chunk: parameters, the full workflow and program versions."""
    document = {
        "format": "studio",
        "version": STUDIO_VERSION,
        "params": params.to_dict(),
        "workflow": workflow,
        "versions": versions,
    }
    return json.dumps(document, ensure_ascii=False, default=str)


def parse_studio_chunk(text: str) -> StudioMetadata:
    """Read a "studio" chunk, migrating older versions and reading what is known of newer ones."""
    return _parse_studio(text, "the Studio settings")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _parse_studio(text: str, where: str) -> StudioMetadata:
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"{_cap(where)} are not valid JSON.") from exc
    if not isinstance(document, dict) or document.get("format") != "studio":
        raise ImageError(f"{_cap(where)} are not in Studio's format.")
    version = found = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ImageError(f"{_cap(where)} have no valid version number.")
    while version < STUDIO_VERSION:
        document, version = _MIGRATIONS[version](document), version + 1
    if version > STUDIO_VERSION:
        log.info(
            "%s were written by a newer Studio (version %d); reading what this one knows.",
            _cap(where),
            version,
        )
    data = document.get("params")
    if not isinstance(data, dict):
        raise ImageError(f"{_cap(where)} contain no generation parameters.")
    clean: dict[str, Any] = {}
    for item in fields(GenerationParams):
        if item.name in data:
            try:
                clean[item.name] = _coerce(data[item.name], getattr(_DEFAULTS, item.name))
            except (TypeError, ValueError) as exc:
                raise ImageError(f"{_cap(where)} have an invalid value for {item.name}.") from exc
    workflow = document.get("workflow")
    versions = document.get("versions")
    return StudioMetadata(
        params=GenerationParams(**clean),
        workflow=workflow if isinstance(workflow, dict) else None,
        versions={str(k): str(v) for k, v in versions.items()}
        if isinstance(versions, dict)
        else {},
        version=found,
    )


def _coerce(value: Any, default: Any) -> Any:
    """Check a JSON value against the type of the field's default."""
    if default is None:  # strength: a number or nothing
        return None if value is None else _coerce(value, 0.0)
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
        raise TypeError(value)
    if isinstance(default, int | float):
        if not isinstance(value, int | float | str):
            raise TypeError(value)
        return _int(str(value)) if isinstance(default, int) else _float(str(value))
    if not isinstance(value, type(default)):
        raise TypeError(value)
    return value


# --- ComfyUI API "prompt" ---------------------------------------------------------------------

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
        except ValueError as exc:
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
        if scheduler == "karras" and sampler_name in _COMFY_KARRAS:
            values["sampler"] = _COMFY_KARRAS[sampler_name]
        elif scheduler in _COMFY_PLAIN_SCHEDULES and sampler_name in _COMFY_PLAIN:
            values["sampler"] = _COMFY_PLAIN[sampler_name]
        else:
            values["sampler"] = _guess_sampler(f"{sampler_name} {scheduler}")
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


# --- reading from image files -------------------------------------------------------------------


def read_metadata(source: str | os.PathLike[str] | Image.Image) -> ImageMetadata | None:
    """Generation settings stored in an image (ours, then A1111, then ComfyUI); None if there are none."""
    if isinstance(source, Image.Image):
        name = Path(getattr(source, "filename", "") or "").name or "the image"
        return _from_texts(_texts(source), source.size, name)
    path = Path(source)
    if not path.exists():
        raise ImageError(f"The image {path.name} was not found in {path.parent}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                texts, size = _texts(image), image.size
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path.name} is not an image file Studio can read.") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{path} is a folder, not an image file.") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path.name} is too large to open safely.") from exc
    except OSError as exc:
        raise ImageError(f"{path.name} cannot be read: {exc.strerror or exc}.") from exc
    return _from_texts(texts, size, path.name)


def _texts(image: Image.Image) -> dict[str, str]:
    texts = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
    wanted = {STUDIO_KEY, A1111_KEY, COMFYUI_KEY}
    if (
        isinstance(image, PngImagePlugin.PngImageFile)
        and not wanted & texts.keys()
        and image.width * image.height <= _MAX_PIXELS_FOR_TRAILING_TEXT
    ):
        try:
            texts.update({k: v for k, v in image.text.items() if isinstance(v, str)})
        except Exception as exc:  # a damaged file can still have readable settings before it
            log.debug("Could not read trailing PNG text chunks: %s", exc)
    if A1111_KEY not in texts:
        comment = _exif_user_comment(image)
        if comment is None and isinstance(image.info.get("comment"), bytes):
            comment = image.info["comment"].decode("utf-8", errors="replace")
        if comment and "Steps:" in comment:
            texts[A1111_KEY] = comment
    return texts


def _exif_user_comment(image: Image.Image) -> str | None:
    """The EXIF UserComment, where A1111 stores parameters in JPEG and WebP files."""
    try:
        data = image.getexif().get_ifd(0x8769).get(0x9286)
    except Exception:
        return None
    if isinstance(data, str):
        return data.strip("\0") or None
    if not isinstance(data, bytes) or not data:
        return None
    prefix, body = data[:8], data[8:]
    if prefix == b"UNICODE\0":
        # The byte order follows the EXIF block's; guess it from where the zero bytes are.
        little = len(body) >= 2 and body[0] != 0 and body[1] == 0
        text = body.decode("utf-16-le" if little else "utf-16-be", errors="replace")
    elif prefix in (b"ASCII\0\0\0", b"\0" * 8):
        text = body.decode("utf-8", errors="replace")
    else:
        text = data.decode("utf-8", errors="replace")
    return text.strip("\0") or None


def _from_texts(texts: dict[str, str], size: tuple[int, int], name: str) -> ImageMetadata | None:
    failures: list[ImageError] = []
    if STUDIO_KEY in texts:
        try:
            found = _parse_studio(texts[STUDIO_KEY], f"the Studio settings in {name}")
            return ImageMetadata(
                found.params, "studio", found.workflow, texts[STUDIO_KEY], found.versions
            )
        except ImageError as exc:
            log.warning("%s", exc)
            failures.append(exc)
    if A1111_KEY in texts:
        return ImageMetadata(from_a1111(texts[A1111_KEY]), "a1111", None, texts[A1111_KEY])
    if COMFYUI_KEY in texts:
        try:
            params, sized = _comfyui(texts[COMFYUI_KEY], f"the ComfyUI settings in {name}")
        except ImageError as exc:
            failures.append(exc)
        else:
            if not sized:  # img2img from a loaded picture: the output has the picture's size
                params = params.with_(width=size[0], height=size[1])
            return ImageMetadata(params, "comfyui", None, texts[COMFYUI_KEY])
    if failures:
        raise failures[0]
    return None
