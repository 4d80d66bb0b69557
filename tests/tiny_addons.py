"""Tiny LoRAs, embeddings and VAEs for the tiny test models, in the layouts users download.

LoRA weights are random (seeded) down/up matrices for the attention projections of the UNet
and of the text encoder(s), written in two layouts:

- diffusers/PEFT: `unet.<module>.lora_A.weight` / `lora_B.weight`, `text_encoder.<module>...`
- kohya/A1111: `lora_unet_<module_with_underscores>.lora_down.weight` / `lora_up.weight` /
  `alpha`, `lora_te_...` (SD1/2) or `lora_te1_...` / `lora_te2_...` (SDXL).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


def _lora_modules(module: torch.nn.Module, targets) -> list[tuple[str, torch.nn.Linear]]:
    return [
        (name, m)
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.Linear) and any(name.endswith(t) for t in targets)
    ]


def _pairs(pipe, rank: int, seed: int, scale: float):
    """(part, module name, down (rank, in), up (out, rank)) for every target layer."""
    generator = torch.Generator().manual_seed(seed)
    parts = [("unet", pipe.unet, UNET_TARGETS), ("text_encoder", pipe.text_encoder, TEXT_TARGETS)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        parts.append(("text_encoder_2", pipe.text_encoder_2, TEXT_TARGETS))
    for part, module, targets in parts:
        for name, linear in _lora_modules(module, targets):
            down = torch.randn(rank, linear.in_features, generator=generator) * scale
            up = torch.randn(linear.out_features, rank, generator=generator) * scale
            yield part, name, down, up


def write_lora(pipe, path: Path, layout: str, *, rank: int = 4, seed: int = 0, scale=0.5) -> Path:
    """A random LoRA for `pipe`'s modules in the "diffusers" or "kohya" layout."""
    state: dict[str, torch.Tensor] = {}
    kohya_prefix = {"unet": "lora_unet", "text_encoder": "lora_te", "text_encoder_2": "lora_te2"}
    if getattr(pipe, "text_encoder_2", None) is not None:
        kohya_prefix["text_encoder"] = "lora_te1"
    for part, name, down, up in _pairs(pipe, rank, seed, scale):
        if layout == "diffusers":
            state[f"{part}.{name}.lora_A.weight"] = down
            state[f"{part}.{name}.lora_B.weight"] = up
        elif layout == "kohya":
            key = f"{kohya_prefix[part]}_{name.replace('.', '_')}"
            state[f"{key}.lora_down.weight"] = down.half()
            state[f"{key}.lora_up.weight"] = up.half()
            state[f"{key}.alpha"] = torch.tensor(float(rank))
        else:
            raise ValueError(layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def write_embedding(path: Path, widths: dict[str, int], count: int = 2, seed: int = 0) -> Path:
    """A textual-inversion file: A1111 .pt (one width) or SDXL clip_l/clip_g .safetensors."""
    generator = torch.Generator().manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".pt":
        (width,) = widths.values()
        vectors = torch.randn(count, width, generator=generator)
        torch.save({"string_to_param": {"*": vectors}, "name": path.stem, "step": 100}, path)
    else:
        save_file({k: torch.randn(count, w, generator=generator) for k, w in widths.items()}, path)
    return path


class _RunsCode:
    """Unpickling this calls `Path.touch` on a marker file: a pickle that runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def write_code_pickle(path: Path, marker: Path) -> Path:
    torch.save({"string_to_param": {"*": _RunsCode(marker)}}, path)
    return path


def write_vae(family: str, path: Path, seed: int = 5) -> Path:
    """A different random VAE of `family`, in the original (LDM) single-file layout."""
    from tests.tiny_models import _vae, _vae_to_original

    torch.manual_seed(seed)
    vae = _vae(family).eval()
    state = {k: v.detach().contiguous().clone() for k, v in _vae_to_original(vae).items()}
    state = {k.removeprefix("first_stage_model."): v for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path
