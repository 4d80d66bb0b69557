"""LoRA files (kohya/A1111 and diffusers/PEFT layouts) through diffusers' PEFT-based loader.

A LoRA is read once per loaded model and kept beside its weights as a named PEFT adapter
(a few MB; the checkpoint is never reloaded or copied). A job switches the adapters it uses
on with their strengths and, when the step is done, switches every adapter off: PEFT then runs
the original layers alone, so the model computes exactly what it did before any LoRA.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import torch

from studio.engine.addons import LoraUse
from studio.errors import ModelError

log = logging.getLogger(__name__)

# Adapters kept per model; the least recently used beyond this are deleted.
MAX_ADAPTERS = 8

# pipeline -> {(path, size, mtime): adapter name}, least recently used first.
_adapters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LYCORIS_MARKERS = ("hada_w1", "lokr_w1", "lokr_w2", ".oft_", "boft_")


def read_lora(path: Path) -> dict[str, torch.Tensor]:
    """A LoRA file's tensors; pickle files only through the weights-only unpickler."""
    from studio.engine.embeddings import read_tensors

    return read_tensors(path, "LoRA")


def _check_layout(path: Path, state: dict[str, torch.Tensor]) -> None:
    if not state:
        raise ModelError(f"{path.name} holds no weights: it is not a LoRA.")
    if any(marker in key for key in state for marker in _LYCORIS_MARKERS):
        raise ModelError(
            f"{path.name} is a LyCORIS LoHa/LoKr/OFT file, which Studio cannot apply yet "
            "(plain LoRA and LoCon files work)."
        )
    known = ("lora_", "lora.", "unet.", "text_encoder", "transformer.")
    if not any(key.startswith(known) or ".lora" in key for key in state):
        raise ModelError(f"{path.name} is not a LoRA (no LoRA weights in it).")


def _key(path: Path) -> tuple:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def adapter_name(model, path: Path) -> str:
    """The adapter holding `path` on this model, loading the file the first time."""
    loaded = _adapters.setdefault(model.base, OrderedDict())
    key = _key(path)
    if key in loaded:
        loaded.move_to_end(key)
        return loaded[key]
    state = read_lora(path)
    _check_layout(path, state)
    name = f"studio_{len(loaded)}_{abs(hash(key)) % 10**8}"
    pipe = model.base
    try:
        with warnings.catch_warnings():
            # PEFT warns that a second adapter joins the first: that is the point here.
            warnings.filterwarnings("ignore", message=".*peft_config.*")
            pipe.load_lora_weights(state, adapter_name=name)
    except ModelError:
        raise
    except Exception as exc:  # diffusers and PEFT raise many kinds; the user needs one line
        _forget(pipe, name)
        text = str(exc).strip()
        if "size mismatch" in text:
            why = "its layers have other sizes, so it is for another model family"
        else:
            why = text.splitlines()[0][:200] if text else type(exc).__name__
        raise ModelError(
            f"{path.name} does not fit {model.name} ({model.info.label}): {why}."
        ) from None
    if not _has_adapter(pipe, name):
        _forget(pipe, name)
        raise ModelError(f"{path.name} has no weights for any layer of {model.name}.")
    # Loading switches the new adapter on; nothing is on outside a job's steps.
    pipe.disable_lora()
    loaded[key] = name
    while len(loaded) > MAX_ADAPTERS:
        _, old = loaded.popitem(last=False)
        pipe.delete_adapters([old])
    log.info("LoRA %s loaded as %s", path.name, name)
    return name


def _forget(pipe, name: str) -> None:
    """Take out what a failed load may have put in (best effort: it may have put in nothing)."""
    try:
        if _has_adapter(pipe, name):
            pipe.delete_adapters([name])
    except Exception:  # noqa: BLE001 - the load's own error is the one to report
        log.debug("Could not delete the half-loaded adapter %s", name, exc_info=True)


def _has_adapter(pipe, name: str) -> bool:
    return any(name in names for names in pipe.get_list_adapters().values())


def activate_loras(model, uses: Iterable[LoraUse]) -> None:
    """Switch on these LoRAs with their strengths (and no other)."""
    from diffusers.utils.peft_utils import set_adapter_layers

    uses = list(uses)
    names = [adapter_name(model, use.path) for use in uses]
    pipe = model.base
    parts = pipe.get_list_adapters()
    weights = []
    for name, use in zip(names, uses, strict=True):
        per_part = {}
        for part, present in parts.items():
            if name in present:
                per_part[part] = use.unet if part in ("unet", "transformer") else use.text
        weights.append(per_part)
    pipe.enable_lora()
    pipe.set_adapters(names, adapter_weights=weights)
    # A part none of these LoRAs touch must not keep another job's adapter switched on.
    for part, present in parts.items():
        if not any(name in present for name in names):
            module = getattr(pipe, part, None)
            if module is not None:
                set_adapter_layers(module, enabled=False)


def deactivate_loras(model) -> None:
    """Every adapter off: the original layers alone compute the output again."""
    if _adapters.get(model.base):
        model.base.disable_lora()


def loaded_adapters(model) -> int:
    return len(_adapters.get(model.base, ()))
