"""Memory modes chosen by size: VAE tiling for big pictures, so no setting is needed for them.

The VAE decoder's activations grow with the picture (its last blocks run at full resolution
with 128-256 channels): about 6 kB a pixel in fp32, so an 8 MP decode would need some 48 GB
at once. Past a share of the memory that is free, it decodes in overlapping tiles instead
(diffusers' tiled VAE), which needs a tile's worth and blends the seams.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import torch

from studio.engine.budget import VAE_DECODE_BYTES_PER_PIXEL

log = logging.getLogger(__name__)

TILING_CHOICES = ("auto", "on", "off")
# Share of free memory a whole-picture decode may take before it is tiled.
FREE_SHARE = 0.4


def free_bytes(device: torch.device) -> int:
    """Memory free for new tensors on `device` now (CPU: what the OS says is available)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # psutil is optional; the page counts are there on Linux and macOS
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def decode_bytes(width: int, height: int, dtype: torch.dtype) -> int:
    """Rough peak of decoding one picture of this size whole."""
    scale = torch.finfo(dtype).bits / 32 if dtype.is_floating_point else 1.0
    # Decoder activations per output pixel in fp32: the figure the job budget uses too.
    return int(width * height * VAE_DECODE_BYTES_PER_PIXEL * scale)


def should_tile_vae(
    width: int, height: int, dtype: torch.dtype, device: torch.device, choice: str = "auto"
) -> bool:
    """Whether to decode (or encode) a picture of this size in tiles."""
    if choice == "on":
        return True
    if choice == "off":
        return False
    need, free = decode_bytes(width, height, dtype), free_bytes(device)
    tile = need > FREE_SHARE * free
    if tile:
        log.info(
            "Decoding %dx%d in tiles: about %.1f GB whole, %.1f GB free",
            width,
            height,
            need / 1e9,
            free / 1e9,
        )
    return tile


@contextlib.contextmanager
def vae_tiling(vae, on: bool) -> Iterator[None]:
    """Tiled VAE for the duration, then as it was (the VAE is shared between jobs)."""
    was = bool(getattr(vae, "use_tiling", False))
    if on != was:
        vae.enable_tiling() if on else vae.disable_tiling()
    try:
        yield
    finally:
        if on != was:
            vae.enable_tiling() if was else vae.disable_tiling()
