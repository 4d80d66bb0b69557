"""The description of one generation: what the user chose, enough to reproduce it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

MODES = ("txt2img", "img2img", "inpaint", "upscale")

# Sampler names as users know them (A1111 spelling); the engine maps each to a diffusers scheduler.
SAMPLERS = (
    "Euler",
    "Euler a",
    "Heun",
    "DPM++ 2M",
    "DPM++ 2M Karras",
    "DPM++ SDE Karras",
    "DDIM",
    "UniPC",
    "LMS",
    "LCM",
)


def round_to_8(value: int) -> int:
    """The nearest multiple of 8 (halves round up), at least 8: latents are 1/8 of the pixels."""
    return max(8, int(value / 8 + 0.5) * 8)


@dataclass(frozen=True)
class GenerationParams:
    """Parameters of one generated image, as stored in its PNG metadata."""

    mode: str = "txt2img"
    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 20
    sampler: str = "Euler a"
    cfg_scale: float = 7.0
    guidance_rescale: float = 0.0
    pag_scale: float = 0.0
    # Fraction of the steps that use classifier-free guidance; the rest run unguided.
    cfg_cutoff: float = 1.0
    seed: int = 0
    width: int = 512
    height: int = 512
    batch_size: int = 1
    # Index of this image within its batch; image i uses seed + i.
    batch_index: int = 0
    # Denoising strength for img2img and inpaint; None for text-to-image.
    strength: float | None = None
    model: str = ""
    model_family: str = ""
    # Inpainting.
    mask_grow: int = 0
    mask_feather: int = 8
    masked_only: bool = False
    masked_padding: int = 32
    color_match: bool = False
    # Upscaling.
    upscaler: str = ""
    upscale_factor: float = 0.0
    noise_level: int = 0
    # Where on the canvas picture this image goes, (x, y, width, height); None: all of it.
    canvas_region: tuple[int, int, int, int] | None = None
    # Anything else worth keeping (tool-specific keys read from other programs' metadata).
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationParams:
        """Build from a dict, ignoring unknown keys (newer files) and keeping defaults for missing ones."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "canvas_region" in values:
            values["canvas_region"] = _box_or_none(values["canvas_region"])
        return cls(**values)

    def with_(self, **changes: Any) -> GenerationParams:
        return replace(self, **changes)


def _box_or_none(value: Any) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) from stored JSON (a list), or None when it is not one."""
    try:
        box = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        return None
    return box if len(box) == 4 else None  # type: ignore[return-value]
