"""A model's native image size: what to generate at when the user has not chosen a size.

Importing this module does not import torch; only a single-file checkpoint needs its weights'
shapes read (through studio.engine.detect), so call `native_size` off the GUI thread.
"""

from __future__ import annotations

import json
from pathlib import Path

from studio.errors import StudioError

FAMILY_SIZES = {"sd1": 512, "sd2": 512, "sd2-v": 768, "sdxl": 1024}


def config_native_size(folder: str | Path) -> int | None:
    """The size a diffusers folder (or config folder) was trained at, from its JSON configs."""
    folder = Path(folder).expanduser()
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
        vae = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
        return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def native_size(path: str | Path, config: str | Path | None = None) -> int | None:
    """The model's native square size in pixels, or None when it cannot be told."""
    path = Path(path).expanduser()
    for folder in (config, path if path.is_dir() else None):
        if folder:
            size = config_native_size(folder)
            if size:
                return size
    if path.is_dir():
        return None
    from studio.engine.detect import detect

    try:
        info = detect(path)
    except (StudioError, OSError):
        return None
    key = "sd2-v" if info.family == "sd2" and info.prediction == "v_prediction" else info.family
    return FAMILY_SIZES.get(key, 512)
