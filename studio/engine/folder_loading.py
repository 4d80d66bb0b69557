"""A diffusers folder's weights streamed into its pipeline, one tensor at a time.

diffusers' `from_pretrained` maps each component's .safetensors file and copies its tensors
into the model converted to the run dtype: an fp16 folder run in fp32 holds the mapped fp16
pages beside the fp32 weights (for SD 1.5, 6.55 GB at the peak for 4.26 GB of weights). Here
each model component (UNet, VAE, text encoders) is built on the meta device from its config
and filled from its files one tensor at a time (studio.engine.streaming), so the peak is the
weights in the run dtype plus one tensor. Components stored otherwise (.bin files, variants
only) are left to diffusers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights

from studio.engine.streaming import SafetensorsReader, WeightMismatch, stream_named
from studio.errors import ModelError

log = logging.getLogger(__name__)

# Weight files by library, single or sharded (an index naming the shard of each weight).
_WEIGHTS = {"diffusers": "diffusion_pytorch_model", "transformers": "model"}


def _weight_files(folder: Path, library: str) -> dict[str, Path] | None:
    """Weight name -> file for one component folder; None when it is not safetensors."""
    stem = _WEIGHTS.get(library)
    if stem is None:
        return None
    single = folder / f"{stem}.safetensors"
    index = folder / f"{stem}.safetensors.index.json"
    if single.is_file():
        return {"": single}
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            return {name: folder / shard for name, shard in weight_map.items()}
        except (OSError, ValueError, KeyError, TypeError):
            raise ModelError(f"{index.name} in {folder} is not a valid weight index.") from None
    return None


def _meta_component(folder: Path, library: str, class_name: str) -> torch.nn.Module | None:
    if library == "diffusers":
        import diffusers

        cls = getattr(diffusers, class_name, None)
        if cls is None or not hasattr(cls, "from_config"):
            return None
        config = cls.load_config(folder)
        with init_empty_weights():
            return cls.from_config(config)
    if library == "transformers":
        import transformers

        cls = getattr(transformers, class_name, None)
        if cls is None or not hasattr(cls, "config_class"):
            return None
        config = cls.config_class.from_pretrained(folder, local_files_only=True)
        with init_empty_weights():
            return cls(config)
    return None


def _fill(model: torch.nn.Module, files: set[Path], dtype: torch.dtype, device) -> None:
    """Every weight of the files into the meta-built model. Older transformers saved their
    text encoders' weights under a `text_model.` wrapper the model may no longer have."""
    wrapped = hasattr(model, "text_model")

    def rename(key: str) -> str:
        return key if wrapped else key.removeprefix("text_model.")

    for path in sorted(files):
        reader = SafetensorsReader(path)
        try:
            stream_named(model, reader, dtype, device, rename)
        finally:
            reader.close()


def stream_folder_components(
    folder: Path, dtype: torch.dtype, device: torch.device, skip: set[str] = frozenset()
) -> dict[str, Any]:
    """The folder's model components with their weights streamed in; the rest (and those in
    `skip`, given by the caller) is for `from_pretrained` to load as it does."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    components: dict[str, Any] = {}
    for name, entry in index.items():
        if name.startswith("_") or name in skip or not isinstance(entry, list) or len(entry) != 2:
            continue
        library, class_name = entry
        if not isinstance(library, str) or not isinstance(class_name, str):
            continue
        files = _weight_files(folder / name, library)
        if files is None:
            continue
        model = _meta_component(folder / name, library, class_name)
        if model is None:
            continue
        try:
            _fill(model, set(files.values()), dtype, device)
        except WeightMismatch as error:
            raise ModelError(
                f"The {name} of {folder.name} does not fit its config: {error}."
            ) from None
        components[name] = model.eval()
    return components
