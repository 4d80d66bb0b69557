"""Live previews: the denoised estimate mapped to RGB by a per-family linear map (no VAE)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

PREVIEW_FILE = "preview.json"


@dataclass(frozen=True)
class LatentRGB:
    """rgb = factors^T @ latent + bias, giving values in about [-1, 1]."""

    factors: tuple[tuple[float, ...], ...]  # one (r, g, b) row per latent channel
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        factors = torch.tensor(self.factors, dtype=torch.float32, device=device)
        bias = torch.tensor(self.bias, dtype=torch.float32, device=device)
        return factors, bias


# Published least-squares fits of latent channels to RGB for the SD 1.x/2.x and SDXL VAEs.
SD_LATENT_RGB = LatentRGB(
    (
        (0.3512, 0.2297, 0.3227),
        (0.3250, 0.4974, 0.2350),
        (-0.2829, 0.1762, 0.2721),
        (-0.2120, -0.2616, -0.7177),
    )
)
SDXL_LATENT_RGB = LatentRGB(
    (
        (0.3651, 0.4232, 0.4341),
        (-0.2533, -0.0042, 0.1068),
        (0.1076, 0.1111, -0.0362),
        (-0.3165, -0.2492, -0.2188),
    ),
    (0.1084, -0.0175, -0.0011),
)


def latent_rgb_for(family: str, model_path: Path | None = None) -> LatentRGB:
    """The map for a model: its own preview.json if it ships one, else its family's."""
    if model_path is not None:
        folder = model_path if model_path.is_dir() else model_path.parent
        candidates = [folder / PREVIEW_FILE, model_path.with_suffix(".preview.json")]
        for candidate in candidates:
            if candidate.is_file():
                try:
                    data = json.loads(candidate.read_text(encoding="utf-8"))
                    return LatentRGB(
                        tuple(tuple(row) for row in data["factors"]),
                        tuple(data.get("bias", (0.0, 0.0, 0.0))),
                    )
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    log.warning("Ignoring unreadable preview map %s: %s", candidate, exc)
    return SDXL_LATENT_RGB if family == "sdxl" else SD_LATENT_RGB


class PreviewMaker:
    """Turns a latent batch into a small uint8 RGB image of its first item."""

    def __init__(self, mapping: LatentRGB, device: torch.device) -> None:
        self.factors, self.bias = mapping.tensors(device)

    def __call__(self, latents: torch.Tensor) -> np.ndarray:
        latent = latents[0, : self.factors.shape[0]].float()
        rgb = torch.einsum("chw,cr->hwr", latent, self.factors) + self.bias
        rgb = ((rgb.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)
        return rgb.cpu().numpy()
