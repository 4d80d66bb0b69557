"""Memory modes for sampling: what a job does when the UNet's working set would not fit.

The modes, from cheapest to slowest, each the answer to a bigger shortage:

- "none": the model and the UNet's activations sit on the device as loaded.
- "attention slicing": the attention's (batch x heads) dimension runs a slice at a time
  (diffusers' `enable_attention_slicing`), so the whole attention matrix is never held. Only
  worth it where the attention is computed as a matrix: torch's fused
  `scaled_dot_product_attention` (diffusers' default processor) never holds the matrix, and
  slicing replaces it with a slower one that holds a slice of it.
- "model offload": only the sub-model that is running (the UNet while sampling) stays on the
  GPU; the text encoders and the VAE wait in CPU memory (`enable_model_cpu_offload`).
- "sequential offload": only the running layer is on the GPU; every weight is copied over when
  its layer runs (`enable_sequential_cpu_offload`): needs least, takes longest.

Offloads need a CUDA GPU (there is nothing to offload to on the CPU) and the accelerate package.
The mode is switched on around one job's sampling and undone after it, since the loaded model
is shared between jobs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

MODES = ("none", "attention slicing", "model offload", "sequential offload")
CHOICES = ("auto", *MODES)
OFFLOADS = ("model offload", "sequential offload")

# UNet activations alive at once per latent pixel and per latent in the UNet's batch (CFG runs
# the positive and negative latents as a batch of two), in fp32, the attention matrix apart.
# Measured with the SD 1.5 UNet (random weights, fp32, CPU, fused attention, batch of two): peak
# RSS of one forward pass grew 401 MB at 64x64 latents and 920 MB at 96x96, 50-52 kB a pixel.
UNET_BYTES_PER_LATENT_PIXEL_FP32 = 52 * 1024
# Attention heads at the UNet's first level, where the sequence is every latent pixel (SD 1.x: 8
# heads at 64x64 for 512x512; SD 2.x and SDXL have fewer tokens or heads there: on the safe side).
ATTENTION_HEADS = 8
# Share of the free memory sampling may plan to take: the rest is for the allocator's slack,
# the latents, the previews and the step callback.
FREE_SHARE = 0.8
# The UNet's share of a checkpoint's weights when it is not given (SD 1.5: 0.80, SDXL: 0.74).
UNET_SHARE = 0.8


@dataclass(frozen=True)
class MemoryPlan:
    """The mode a job samples in, and the sentence that tells the user why ("" for none)."""

    mode: str
    message: str = ""


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.1f} GB"


def _element_bytes(dtype: torch.dtype) -> int:
    return torch.finfo(dtype).bits // 8 if dtype.is_floating_point else 4


def activation_bytes(width: int, height: int, batch: int, dtype: torch.dtype) -> int:
    """The UNet's activations (the attention matrix apart) for `batch` latents of this picture."""
    pixels = (width // 8) * (height // 8)
    return int(pixels * batch * UNET_BYTES_PER_LATENT_PIXEL_FP32 * _element_bytes(dtype) / 4)


def attention_bytes(
    width: int, height: int, batch: int, dtype: torch.dtype, *, fused: bool, sliced: bool = False
) -> int:
    """The largest attention matrix held at once: none with fused attention.

    Sliced ("auto" slices: half the heads of one latent at a time) holds 1/(2 x batch) of it.
    """
    if fused:
        return 0
    tokens = (width // 8) * (height // 8)
    whole = tokens * tokens * ATTENTION_HEADS * batch * _element_bytes(dtype)
    return whole // (2 * batch) if sliced else whole


def choose_memory_mode(
    device_type: str,
    free: int,
    weight_bytes: int,
    width: int,
    height: int,
    batch_size: int,
    dtype: torch.dtype,
    *,
    choice: str = "auto",
    cfg: bool = True,
    fused_attention: bool = True,
    unet_bytes: int | None = None,
    can_offload: bool = True,
) -> MemoryPlan:
    """The memory mode for sampling `batch_size` pictures of width x height at once.

    `free` is measured with the model already loaded on the device, `weight_bytes` are its
    weights in the run dtype. The UNet needs its activations (UNET_BYTES_PER_LATENT_PIXEL_FP32
    per latent pixel and latent, CFG doubling the latents) plus the attention matrix
    (tokens^2 x heads x latents, none when fused), within FREE_SHARE of what is free:

    - it fits: "none";
    - it fits with the attention sliced: "attention slicing" (only where attention is not fused);
    - CUDA, and it fits once the text encoders and the VAE (the weights but the UNet's) leave
      the GPU: "model offload";
    - CUDA otherwise: "sequential offload", which frees all the weights but the running layer's.

    On the CPU (and MPS) nothing is offloaded; a forced offload there is explained and ignored.
    """
    batch = batch_size * (2 if cfg else 1)
    if choice not in CHOICES:
        return MemoryPlan("none", f"Unknown memory mode '{choice}': using none.")
    cuda = device_type == "cuda"
    if choice in OFFLOADS and not cuda:
        return MemoryPlan(
            "none",
            f"{choice.capitalize()} needs a CUDA GPU; this job runs on the "
            f"{device_type.upper()} without it.",
        )
    if choice in OFFLOADS and not can_offload:
        return MemoryPlan(
            "attention slicing",
            f"{choice.capitalize()} needs the accelerate package, which is not installed; "
            "using attention slicing instead.",
        )
    activations = activation_bytes(width, height, batch, dtype)
    whole = activations + attention_bytes(width, height, batch, dtype, fused=fused_attention)
    sliced = activations + attention_bytes(
        width, height, batch, dtype, fused=fused_attention, sliced=True
    )
    budget = int(free * FREE_SHARE)
    size = f"{width}x{height}" + (f" x{batch_size}" if batch_size > 1 else "")
    if choice != "auto":
        if choice == "none":
            return MemoryPlan("none")
        return MemoryPlan(
            choice,
            f"Using {choice} (chosen in the settings): sampling {size} would need about "
            f"{_gb(whole)}, {_gb(free)} free.",
        )
    if whole <= budget:
        return MemoryPlan("none")
    if not fused_attention and sliced <= budget:
        mode = "attention slicing"
    elif not cuda or not can_offload:
        if fused_attention:
            # Slicing would not help fused attention: try as it is and say it is tight.
            return MemoryPlan(
                "none",
                f"Sampling {size} would need about {_gb(whole)}, more than {FREE_SHARE:.0%} of "
                f"the {_gb(free)} free: it may not fit.",
            )
        mode = "attention slicing"
    else:
        unet = int(weight_bytes * UNET_SHARE) if unet_bytes is None else unet_bytes
        offloaded = max(0, weight_bytes - unet)
        need = sliced if not fused_attention else whole
        fits = need <= int((free + offloaded) * FREE_SHARE)
        mode = "model offload" if fits else "sequential offload"
    return MemoryPlan(
        mode,
        f"Using {mode}: sampling {size} would need about {_gb(whole)}, more than "
        f"{FREE_SHARE:.0%} of the {_gb(free)} free.",
    )


def offload_available() -> bool:
    """Whether diffusers' offloads can run here (they are built on accelerate)."""
    return importlib.util.find_spec("accelerate") is not None


def attention_is_fused(unet: Any) -> bool:
    """Whether every attention layer runs through a fused kernel that never holds the matrix."""
    processors = getattr(unet, "attn_processors", None)
    if not processors:
        return True
    return all(
        type(p).__name__.endswith("2_0") or type(p).__name__.startswith("XFormers")
        for p in processors.values()
    )


def _processors(pipe: Any) -> dict[str, dict]:
    """Every component's attention processors by component name (to put them back after)."""
    return {
        name: dict(module.attn_processors)
        for name, module in pipe.components.items()
        if isinstance(module, torch.nn.Module) and hasattr(module, "attn_processors")
    }


@contextlib.contextmanager
def memory_mode(pipe: Any, mode: str, device: torch.device) -> Iterator[None]:
    """Run the block with `pipe` in this memory mode, then leave it as it was."""
    if mode == "none":
        yield
        return
    if mode == "attention slicing":
        saved = _processors(pipe)
        pipe.enable_attention_slicing()
        try:
            yield
        finally:
            for name, processors in saved.items():
                pipe.components[name].set_attn_processor(processors)
        return
    if mode not in OFFLOADS:
        raise ValueError(f"unknown memory mode {mode!r}")
    if mode == "model offload":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)
    try:
        yield
    finally:
        # Hooks off, weights back where the shared model keeps them, and no offload state left
        # for the pipeline's maybe_free_model_hooks to switch back on in the next job.
        pipe.remove_all_hooks()
        pipe.to(device)
        for name in ("_offload_device", "_offload_gpu_id"):
            if name in pipe.__dict__:
                delattr(pipe, name)


def plan_for(
    model: Any, width: int, height: int, choice: str = "auto", *, cfg: bool = True
) -> MemoryPlan:
    """The memory plan for sampling one picture at a time with a loaded (or patched) model."""
    from studio.engine.addons import base_model
    from studio.engine.memory import free_bytes

    loaded = base_model(model)
    device, unet = loaded.choice.device, loaded.base.unet
    return choose_memory_mode(
        device.type,
        free_bytes(device),
        loaded.nbytes,
        width,
        height,
        1,  # the Sample node runs the images of a batch one after another
        loaded.choice.dtype,
        choice=choice,
        cfg=cfg,
        fused_attention=attention_is_fused(unet),
        unet_bytes=sum(p.numel() * p.element_size() for p in unet.parameters()),
        can_offload=offload_available(),
    )
