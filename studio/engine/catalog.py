"""Finding the models in the user's folders and saying what each one is.

The work is in studio.engine.model_files (header-only classification, cached by size and
mtime) and studio.engine.folders (A1111/ComfyUI layouts); this is the name callers use.
"""

from __future__ import annotations

from pathlib import Path

from studio.engine.model_files import ModelEntry, describe

__all__ = ["ModelEntry", "describe", "scan_models"]


def scan_models(folders: list[Path]) -> list[ModelEntry]:
    """Every model file under the folders (A1111/ComfyUI installs too), classified by kind."""
    from studio.engine.model_files import scan_folders

    return scan_folders(folders)
