"""Weights kept in half precision between uses when that loses nothing.

Most checkpoints store their weights in fp16, and on the CPU Studio runs in fp32: loading doubles
every weight. For the text encoders and the VAE, which run once a job (or once a prompt), the
layers' weights can stay in fp16 and be widened one layer at a time as it runs (diffusers'
layerwise casting). When every weight of those layers is exactly representable in fp16 (always
so for a file stored in fp16), the widened weights are the fp32 weights, bit for bit, so the
pictures do not change; only the memory does. The UNet, which runs every step, stays as it is:
widening it each step would cost more time than its memory is worth.

Measured on the random SD 1.5 file (CPU, 256x256, 4 steps): see `bench/full_size.py` in the
README.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

# Components small enough per run that widening them at each use costs little.
COMPONENTS = ("text_encoder", "text_encoder_2", "vae")
_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


def exactly_half(module: torch.nn.Module) -> bool:
    """Whether every float32 weight of the module's linear and conv layers survives fp16."""
    found = False
    for layer in module.modules():
        if not isinstance(layer, _LAYERS):
            continue
        for parameter in layer.parameters(recurse=False):
            if parameter.dtype != torch.float32:
                return False
            with torch.no_grad():
                if not torch.equal(parameter.to(torch.float16).to(torch.float32), parameter):
                    return False
            found = True
    return found


def store_in_half(pipe, dtype: torch.dtype) -> int:
    """Keep the text encoders' and the VAE's layer weights in fp16 where that is lossless; the
    bytes saved."""
    if dtype != torch.float32:
        return 0
    from diffusers.hooks import apply_layerwise_casting

    saved = 0
    for name in COMPONENTS:
        module = getattr(pipe, name, None)
        if not isinstance(module, torch.nn.Module) or not exactly_half(module):
            continue
        before = _bytes(module)
        # Embeddings stay as they are: a text encoder reports the dtype of its first weight
        # (the token embedding), and the pipeline casts prompt embeddings to it.
        apply_layerwise_casting(
            module,
            storage_dtype=torch.float16,
            compute_dtype=torch.float32,
            skip_modules_classes=(torch.nn.Embedding,),
        )
        saved += before - _bytes(module)
    if saved:
        log.info("Keeping %.0f MB of exact fp16 weights in fp16 between uses", saved / 2**20)
    return saved


def _bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())
