"""AUTOMATIC1111's "parameters" text: prompt, negative prompt and one line of settings."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from typing import Any

from studio.formats.parameters import MODES, SAMPLERS, GenerationParams

log = logging.getLogger(__name__)

_DEFAULTS = GenerationParams()

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


# _int, _float and _guess_sampler are shared with studio.formats.comfyui and .metadata.
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
        except (ValueError, RecursionError):
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
