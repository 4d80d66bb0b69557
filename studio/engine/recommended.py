"""Sampling settings a model recommends for itself, from a ``studio.json`` in its folder.

A model trained for a narrow world can want other settings than Stable Diffusion's usual ones:
the bundled Studio Shapes model draws best at CFG 3, and at SD's usual 7 its colours and shapes
overshoot. The CLI and the window start from a model's recommendation when the user has not
chosen a value. The file reads ``{"recommended": {"cfg_scale": 3.0}}``; unknown keys and
out-of-range values are ignored. No torch here: the window reads it on the GUI thread.
"""

from __future__ import annotations

import json
from pathlib import Path

from studio.formats.parameters import GenerationParams

SETTINGS_FILE = "studio.json"
DEFAULT_CFG = GenerationParams.cfg_scale  # also the Sample node's: for models that recommend none
# What a model may recommend, with the range a recommendation must fall in.
_RANGES = {"cfg_scale": (0.0, 30.0)}


def recommended(path: str | Path) -> dict[str, float]:
    """The settings the model at `path` recommends (empty for single files and most folders)."""
    folder = Path(path).expanduser()
    try:
        data = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    settings = data.get("recommended") if isinstance(data, dict) else None
    if not isinstance(settings, dict):
        return {}
    found = {}
    for name, (low, high) in _RANGES.items():
        value = settings.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high:
            found[name] = float(value)
    return found


def recommended_cfg(path: str | Path) -> float:
    """The CFG scale to start from for the model at `path`."""
    return recommended(path).get("cfg_scale", DEFAULT_CFG)
