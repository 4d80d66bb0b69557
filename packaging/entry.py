"""The frozen app's entry point: make the process safe to run without a terminal, then `studio`.

PyInstaller runs this file as `__main__` inside dist/Studio. Everything here happens before
Studio (and torch, tqdm, warnings, logging) is imported, because those capture sys.stderr early.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path


def _redirect_missing_streams() -> None:
    """Windowed builds (Windows, macOS) start with sys.stdout/stderr set to None.

    Anything that writes to them (tqdm, warnings, logging's last-resort handler, print in a
    library) would raise AttributeError; send them to a log file the user can find instead.
    """
    if sys.stdout is not None and sys.stderr is not None:
        return
    stream = None
    try:
        import platformdirs

        folder = Path(platformdirs.user_log_dir("Studio", appauthor=False))
        folder.mkdir(parents=True, exist_ok=True)
        stream = open(folder / "studio.log", "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    except OSError:
        stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    if sys.stdout is None:
        sys.stdout = stream
    if sys.stderr is None:
        sys.stderr = stream


def _apply_build_variant() -> None:
    """A CPU build leaves out the CUDA libraries torch loads on demand: keep torch off the GPU.

    STUDIO_FORCE_CUDA=1 is the escape hatch for someone who put the libraries back.
    """
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is None:
        return
    try:
        info = json.loads((Path(bundle) / "studio_build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if info.get("variant") == "cpu" and not os.environ.get("STUDIO_FORCE_CUDA"):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def main() -> int:
    _redirect_missing_streams()
    _apply_build_variant()
    # A frozen Windows app re-runs itself for multiprocessing children: let them do their job.
    multiprocessing.freeze_support()
    from studio.cli import main as studio_main

    return studio_main()


if __name__ == "__main__":
    sys.exit(main())
