"""Where the bundled resources live, in a source checkout and in a frozen app."""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    """The `resources/` folder: beside the package in a checkout, inside the bundle when frozen."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


RESOURCES = resources_dir()
CLIP_TOKENIZER = RESOURCES / "tokenizers" / "clip"
MODEL_CONFIGS = RESOURCES / "configs"
# The small default model that ships with the app (see studio/demo/): used whenever the user
# has configured no model of their own.
DEMO_MODELS = RESOURCES / "models"
DEMO_CHECKPOINT = DEMO_MODELS / "studio-shapes"
DEMO_UPSCALER = DEMO_MODELS / "studio-shapes-x4.safetensors"
