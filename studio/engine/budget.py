"""Memory budgets: estimate what a job or a step will need before it starts, refuse what won't fit.

The estimates are deliberately simple and on the safe side (bytes per pixel of the largest
working set), so a refusal comes in milliseconds, not after minutes of swapping or an
out-of-memory kill. `STUDIO_MEMORY_LIMIT` (bytes, or with a K/M/G suffix) overrides the limit
taken from the machine, for people who want Studio to use less, and for tests.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from studio.errors import ParameterError

log = logging.getLogger(__name__)

# The SD VAE's largest activations sit at full resolution with 128-256 channels. Peak per
# pixel in fp32, measured on the SD 1.5 VAE on the CPU at 256 and 512 px: encoding about
# 2.5 kB, decoding 4.2-6.2 kB (the decoder's last blocks are wider). engine/memory.py tiles a
# decode by the same figure.
VAE_ENCODE_BYTES_PER_PIXEL = 3 * 1024
VAE_DECODE_BYTES_PER_PIXEL = 6 * 1024
# An upscaled picture as uint8 RGB plus the float32 accumulator and weights tiles blend into.
UPSCALE_OUTPUT_BYTES_PER_PIXEL = 3 + 3 * 4 + 4
# A resized picture: PIL holds the source and the result (RGB, 4 bytes a pixel internally).
RESIZE_BYTES_PER_PIXEL = 4 * 2
# Decoding in tiles: the whole picture stays as float32 RGB with a copy or two on its way to
# PIL (about 48 bytes a pixel), plus one tile of diffusers' tiled VAE (512x512 for SD).
DECODED_BYTES_PER_PIXEL = 48
TILE_SIDE = 512
# The VAE works in 8x8 blocks: a smaller picture has no latent at all.
MIN_SIDE = 8
_SUFFIXES = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _parse_bytes(text: str) -> int | None:
    text = text.strip().upper().removesuffix("B")
    unit = text[-1:] if text[-1:] in _SUFFIXES else ""
    try:
        value = float(text[: len(text) - len(unit)])
    except ValueError:
        return None
    return int(value * _SUFFIXES[unit]) if value > 0 else None


def memory_limit(device: Any = None) -> int:
    """Bytes one job may use on `device` (a torch.device, a type name, or None for the CPU)."""
    override = os.environ.get("STUDIO_MEMORY_LIMIT")
    if override:
        parsed = _parse_bytes(override)
        if parsed is not None:
            return parsed
        log.warning("Ignoring STUDIO_MEMORY_LIMIT=%r: expected bytes like 8G.", override)
    kind = getattr(device, "type", device) or "cpu"
    if kind == "cuda":
        import torch

        index = getattr(device, "index", None)
        total = torch.cuda.get_device_properties(index or 0).total_memory
        return int(total * 0.85)
    try:
        import psutil

        return int(psutil.virtual_memory().available * 0.85)
    except Exception:  # psutil missing or unable to read the machine: physical memory / 2
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
        except (ValueError, OSError, AttributeError):
            return 8 * 2**30


def _gb(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GB"


def check_vae(
    width: int,
    height: int,
    *,
    device: Any = None,
    half: bool = False,
    what: str = "the picture",
    decode: bool = False,
) -> None:
    """Refuse a VAE encode (or, with `decode`, a whole decode) at width x height that would
    not fit in memory.

    Images of a batch go through the VAE one at a time, so the batch size does not count.
    """
    check_side(width, height, what=what)
    per_pixel = VAE_DECODE_BYTES_PER_PIXEL if decode else VAE_ENCODE_BYTES_PER_PIXEL
    need = width * height * per_pixel // (2 if half else 1)
    limit = memory_limit(device)
    if need > limit:
        raise ParameterError(
            f"{_cap(what)} at {width}x{height} would need about {_gb(need)} of memory to "
            f"encode or decode, more than the {_gb(limit)} available: use a smaller size "
            "(--size), or upscale a smaller result."
        )


def check_tiled_decode(
    width: int, height: int, *, device: Any = None, half: bool = False, what: str = "an image"
) -> None:
    """Refuse a decode that would not fit even in tiles (the Decode node tiles big pictures).

    What tiling cannot shrink is the whole picture as float tensors and their copies on the way
    to PIL, plus one tile's activations.
    """
    check_side(width, height, what=what)
    tile = TILE_SIDE * TILE_SIDE * VAE_DECODE_BYTES_PER_PIXEL // (2 if half else 1)
    need = width * height * DECODED_BYTES_PER_PIXEL + tile
    limit = memory_limit(device)
    if need > limit:
        raise ParameterError(
            f"{_cap(what)} at {width}x{height} would need about {_gb(need)} of memory even "
            f"decoded in tiles, more than the {_gb(limit)} available: use a smaller size "
            "(--size), or upscale a smaller result."
        )


def check_side(width: int, height: int, *, what: str = "the picture") -> None:
    """Refuse a picture too small to have a latent (a 1x1 image, say)."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ParameterError(
            f"{_cap(what)} is {width}x{height} pixels; Studio needs at least "
            f"{MIN_SIDE}x{MIN_SIDE}: use a larger picture."
        )


def check_upscale(width: int, height: int, scale: float, *, model: bool) -> tuple[int, int]:
    """Refuse an upscale whose result would not fit in memory; return the result's size."""
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    per_pixel = UPSCALE_OUTPUT_BYTES_PER_PIXEL if model else RESIZE_BYTES_PER_PIXEL
    need = out_w * out_h * per_pixel
    limit = memory_limit()
    if need > limit:
        raise ParameterError(
            f"Upscaling {width}x{height} by {scale:g} makes a {out_w}x{out_h} picture that "
            f"would need about {_gb(need)} of memory, more than the {_gb(limit)} available: "
            "use a smaller factor or a smaller picture."
        )
    return out_w, out_h


def check_job(graph: Any, inputs: dict[str, Any], device: Any = None, half: bool = False) -> None:
    """Before a job starts: its canvas pictures and empty latents must fit through the VAE."""
    from PIL import Image

    nodes = getattr(graph, "nodes", {}).values()
    # A generation region scaled to the model, or a masked-area crop, is all the VAE sees of
    # the canvas picture: a 12-megapixel photo then costs what the model's size costs.
    bounded = any(
        (node.type == "Region" and node.params.get("scale", True)) or node.type == "CropToMask"
        for node in nodes
    )
    for name, value in (inputs or {}).items():
        if name == "mask" or not isinstance(value, Image.Image):
            continue
        if bounded:
            check_side(*value.size, what=f"the {name}")  # scaling cannot make up a picture
        else:
            check_vae(*value.size, device=device, half=half, what=f"the {name}")
    # The Decode node decodes big pictures in tiles unless told not to (engine/memory.py).
    tiles = any(n.type == "Decode" and n.params.get("tiling", "auto") != "off" for n in nodes)
    for node in nodes:
        if node.type == "EmptyLatent":
            params = node.params
            try:
                width, height = int(params.get("width", 512)), int(params.get("height", 512))
            except (TypeError, ValueError):
                continue  # validation names the bad value
            if width and height:  # 0 = the model's native size, filled in later
                if tiles:
                    check_tiled_decode(width, height, device=device, half=half, what="an image")
                else:
                    check_vae(width, height, device=device, half=half, what="an image", decode=True)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
