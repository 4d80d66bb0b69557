"""A separate VAE in place of a checkpoint's own, for one job at a time.

Single-file VAEs as people have them (`vae-ft-mse-840000-ema-pruned.safetensors`, the SDXL
fp16-fix VAE, ...) are in the original (LDM) layout, sometimes under `first_stage_model.`;
some are saved in diffusers' layout; a diffusers VAE folder works too. The VAE is built from
the loaded model's own VAE config, so its shape must match that family.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from studio.errors import ModelError

log = logging.getLogger(__name__)
_cache: OrderedDict[tuple, torch.nn.Module] = OrderedDict()
_cache_lock = threading.Lock()
MAX_CACHED = 2


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    from studio.engine.embeddings import read_tensors

    state = read_tensors(path, "VAE")
    state = state.get("state_dict", state) if isinstance(state.get("state_dict"), dict) else state
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_vae(path: str | Path, config, device, dtype) -> torch.nn.Module:
    """A VAE file or diffusers VAE folder, built with `config` (the model's VAE config)."""
    from diffusers import AutoencoderKL

    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"VAE file not found: {path}.")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, str(device), str(dtype))
    key += (tuple(config.get("block_out_channels", ())), config.get("latent_channels"))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    if path.is_dir():
        try:
            vae = AutoencoderKL.from_pretrained(path, local_files_only=True, torch_dtype=dtype)
        except Exception as exc:
            raise ModelError(f"{path.name} is not a diffusers VAE folder ({exc}).") from None
    else:
        state = _read_state(path)
        vae = AutoencoderKL.from_config(config)
        if not any(
            k.startswith("encoder.down_blocks.") or k.startswith("decoder.up_blocks.")
            for k in state
        ):
            from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

            try:
                state = convert_ldm_vae_checkpoint(state, dict(config))
            except Exception:
                raise ModelError(
                    f"{path.name} is not a VAE (its weights have other names)."
                ) from None
        own = vae.state_dict()
        wrong = [
            k for k, v in own.items() if k not in state or tuple(state[k].shape) != tuple(v.shape)
        ]
        if wrong:
            raise ModelError(
                f"{path.name} does not fit this model's VAE ({len(wrong)} of {len(own)} weights "
                f"missing or shaped differently, e.g. {wrong[0]}): it is for another family."
            )
        vae.load_state_dict({k: state[k] for k in own})
    vae = vae.to(device=device, dtype=dtype).eval()
    with _cache_lock:
        _cache[key] = vae
        while len(_cache) > MAX_CACHED:
            _cache.popitem(last=False)
    log.info("VAE %s loaded", path.name)
    return vae


def swap_vae(loaded, path: Path) -> Callable[[], None]:
    """Put the VAE at `path` into the model's pipelines; returns how to put the own one back."""
    pipe = loaded.base
    own = pipe.vae
    vae = load_vae(path, own.config, loaded.choice.device, own.dtype)

    def pipelines():
        return [pipe, *getattr(loaded, "_variants", {}).values()]

    for each in pipelines():
        each.vae = vae

    def restore() -> None:
        # Pipelines made while the override was in (from_pipe) took it too.
        for each in pipelines():
            if each.vae is vae:
                each.vae = own

    return restore
