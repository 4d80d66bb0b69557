"""Finding the models in the user's folders and saying what each one is."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from studio.engine.detect import CHECKPOINT_SUFFIXES, UNET, detect, read_state_dict_shapes
from studio.errors import StudioError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    path: Path
    kind: str  # "checkpoint", "upscaler" or "unusable"
    label: str  # the detected family, or why it cannot be used


def _candidates(folder: Path):
    if (folder / "model_index.json").exists():
        yield folder
        return
    for item in sorted(folder.iterdir()):
        if item.is_dir():
            if (item / "model_index.json").exists():
                yield item
            elif not item.name.startswith("."):
                yield from _candidates(item)
        elif item.suffix.lower() in CHECKPOINT_SUFFIXES:
            yield item


def describe(path: Path) -> ModelEntry:
    """Classify one file or folder without loading it onto a device."""
    try:
        if path.is_dir():
            return ModelEntry(path, "checkpoint", detect(path).label)
        shapes, _ = read_state_dict_shapes(path)
        if any(key.startswith(UNET) for key in shapes):
            return ModelEntry(path, "checkpoint", detect(path).label)
        from studio.engine.upscale import load_upscale_model

        model = load_upscale_model(path, device="cpu")
        return ModelEntry(path, "upscaler", f"{model.architecture} x{model.scale}")
    except StudioError as exc:
        return ModelEntry(path, "unusable", str(exc))


def scan_models(folders: list[Path]) -> list[ModelEntry]:
    """Every checkpoint and upscale model under the folders, classified."""
    entries = []
    for folder in folders:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            entries.append(ModelEntry(folder, "unusable", f"Folder not found: {folder}."))
            continue
        entries.extend(describe(item) for item in _candidates(folder))
    return entries
