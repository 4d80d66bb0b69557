"""Model add-ons (LoRAs, VAE override, clip skip): applied to the shared model for one use only.

A LoRA, VAE or clip-skip node does not copy or change the cached model: it passes on a
`PatchedModel`, the same loaded model plus a list of add-ons. Engine steps that run the
model (prompt encoding, sampling, VAE encode/decode) do so inside `applied(model)`, which
switches the add-ons on and, on the way out, switches them off again, so the next user of the
cached model (the next job, or another branch of this one) gets it exactly as it was loaded.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# One model is patched by one step at a time.
_lock = threading.RLock()


@dataclass(frozen=True)
class LoraUse:
    """One LoRA file with its strengths on the UNet and on the text encoder(s)."""

    path: Path
    unet: float = 1.0
    text: float = 1.0


@dataclass(frozen=True)
class Addons:
    loras: tuple[LoraUse, ...] = ()
    clip_skip: int = 1  # A1111's numbering: 1 = the last layer, 2 = the one before it
    vae: Path | None = None

    @property
    def active_loras(self) -> tuple[LoraUse, ...]:
        """LoRAs at strength 0 on both parts are left out entirely (as if not there)."""
        return tuple(lo for lo in self.loras if lo.unet != 0 or lo.text != 0)


class PatchedModel:
    """A loaded model seen through add-ons; every other attribute is the shared model's."""

    def __init__(self, model: Any, addons: Addons) -> None:
        self.model = model
        self.addons = addons

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    @property
    def nbytes(self) -> int:
        # The weights are the shared model's, counted where it is cached.
        return 0


def base_model(model: Any) -> Any:
    return model.model if isinstance(model, PatchedModel) else model


def addons_of(model: Any) -> Addons:
    return model.addons if isinstance(model, PatchedModel) else Addons()


def with_addons(model: Any, **changes: Any) -> PatchedModel:
    """The model with add-ons changed (LoRAs given in `loras` are appended)."""
    current = addons_of(model)
    if "loras" in changes:
        changes["loras"] = current.loras + tuple(changes["loras"])
    return PatchedModel(base_model(model), replace(current, **changes))


@contextlib.contextmanager
def applied(model: Any, *, loras: bool = True):
    """Switch the model's add-ons on for the duration of the block, then off again.

    `loras=False` for VAE-only steps (encoding and decoding pixels), which no LoRA touches.
    """
    addons = addons_of(model)
    if not loras:
        addons = replace(addons, loras=())
    loaded = base_model(model)
    if addons == Addons():
        yield
        return
    from studio.engine.loras import activate_loras, deactivate_loras
    from studio.engine.vae import swap_vae

    with _lock:
        restore_vae = None
        activated = False
        try:
            if addons.vae is not None:
                restore_vae = swap_vae(loaded, addons.vae)
            if addons.active_loras:
                activate_loras(loaded, addons.active_loras)
                activated = True
            yield
        finally:
            if activated:
                deactivate_loras(loaded)
            if restore_vae is not None:
                restore_vae()
