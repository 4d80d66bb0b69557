"""`studio --self-test`: prove an installation works, the way a user would use it.

Opens the real window offscreen, generates one small image with the bundled model through the
window's own generate action (panel -> document -> bridge -> runtime worker), and checks what
comes out: the staged image and the saved PNG. Settings, window state, outputs and caches all
go into a temporary folder that is removed afterwards, so the user's files are never touched.

It prints one line per check and returns 0 when all pass, 1 otherwise. The packaged app answers
`--self-test` too; packaging/build.sh and CI run it on the frozen build. Qt is imported only
when the test runs, so importing this module stays cheap.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

# The scene the bundled model draws well: a large shape on a plain background, so the
# analyser can find the background even after only a few steps.
PROMPT = "a large red circle in the center on a blue background"
EXPECTED_BACKGROUND = "blue"
SEED = 7
STEPS = 8
SIZE = 64
JOB_TIMEOUT_S = 900.0  # normally seconds; generous for a slow CPU shared with other work


@dataclass
class Report:
    """The checks run so far; each is printed as it completes."""

    out: TextIO | None = None
    results: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append((name, ok, detail))
        self._print(f"{'ok  ' if ok else 'FAIL'}  {name:<10} {detail}".rstrip())
        return ok

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(ok for _, ok, _ in self.results)

    def _print(self, line: str) -> None:
        out = self.out or sys.stdout
        if out is not None:  # a windowed app without a log file: nothing to print to
            print(line, file=out, flush=True)


@contextmanager
def _sandbox() -> Iterator[Path]:
    """A temporary home for everything the app writes; the environment is restored after."""
    root = Path(tempfile.mkdtemp(prefix="studio-selftest-"))
    overrides = {
        "STUDIO_CONFIG_DIR": str(root / "config"),
        # Libraries that cache (Hugging Face, torch, Qt through XDG) must write here, not home.
        "HF_HOME": str(root / "hf"),
        "TORCH_HOME": str(root / "torch"),
        "XDG_CACHE_HOME": str(root / "cache"),
        # torch makes its compile cache folder in the system temp folder when first imported.
        "TORCHINDUCTOR_CACHE_DIR": str(root / "torchinductor"),
        "TRITON_CACHE_DIR": str(root / "triton"),
    }
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield root
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(root, ignore_errors=True)


def check_image(image: Any, report: Report, expected_background: str | None) -> None:
    """An RGB image of the requested size that is not flat, with the background it was asked for."""
    import numpy as np

    if not report.check("image", image is not None, "" if image is not None else "no image"):
        return
    mode_ok = image.mode == "RGB" and image.size == (SIZE, SIZE)
    report.check("format", mode_ok, f"{image.mode} {image.size[0]}x{image.size[1]}")
    # Spread across pixels, per channel: a solid colour has none, whatever the colour.
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3)
    spread = float(pixels.std(axis=0).max())
    report.check("contents", spread > 8.0, f"pixel std {spread:.1f} (flat images fail)")
    if expected_background is not None:
        from studio.demo.analyse import analyse

        found = analyse(image)
        report.check(
            "scene",
            found.background == expected_background,
            f"background {found.background}, shape {found.color} {found.shape} "
            f"(asked for a {expected_background} background)",
        )


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    # Not QTest.qWait: PySide6 holds the GIL there, starving the worker thread that generates.
    from studio.ui.app import wait

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        wait(20)
    return condition()


def _generate_in_window(root: Path, model: Path, report: Report) -> None:
    # Offscreen unless the caller chose a platform: the test must work on a headless server and
    # must not flash a window at a user who runs it from a terminal.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from studio.formats.metadata import read_metadata
    from studio.settings import Settings
    from studio.ui.main_window import MainWindow
    from studio.ui.theme import apply_theme

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "studio"])
    started = time.perf_counter()
    output = root / "outputs"
    settings = Settings(output_folder=str(output), device=os.environ.get("STUDIO_DEVICE", "auto"))
    apply_theme(app, settings.theme)
    window = MainWindow(settings)
    try:
        window.show()
        app.processEvents()
        report.check(
            "window",
            window.isVisible(),
            f"shown in {time.perf_counter() - started:.2f} s "
            f"({app.platformName()} platform, torch imported: {'torch' in sys.modules})",
        )
        document = window.document
        document.set_param("model", "path", str(model))
        document.set_param("positive", "text", PROMPT)
        document.set_param("negative", "text", "")
        document.set_param("sample", "steps", STEPS)
        document.set_param("sample", "seed", SEED)
        document.set_param("latent", "width", SIZE)
        document.set_param("latent", "height", SIZE)
        for _node, _param, seed_field in window.panel.seed_fields():
            seed_field.random.setChecked(False)  # the fixed seed, not a fresh random one

        began = time.perf_counter()
        window.session.generate()  # what the Generate button and Ctrl+Enter do
        if not report.check("submitted", window.bridge.busy, window.message.text()):
            return
        done = _wait(lambda: not window.bridge.busy, JOB_TIMEOUT_S)
        elapsed = time.perf_counter() - began
        failed = window.message.isVisible() and window.message.text()
        if not report.check(
            "generate",
            done and not failed,
            f"{STEPS} steps at {SIZE}x{SIZE} in {elapsed:.1f} s"
            if done and not failed
            else failed or f"no result after {JOB_TIMEOUT_S:.0f} s",
        ):
            return
        staged = window.canvas.staged_image() if window.canvas.staged_count() else None
        check_image(staged, report, EXPECTED_BACKGROUND)

        saved = sorted(output.glob("*.png"))
        meta = read_metadata(saved[0]) if len(saved) == 1 else None
        report.check(
            "saved",
            meta is not None and meta.params.seed == SEED,
            f"{saved[0].name} with its parameters (seed {meta.params.seed})"
            if meta is not None
            else f"{len(saved)} PNG files in the output folder, expected 1 with metadata",
        )
    finally:
        window.close()
        app.processEvents()


def run_self_test(model: Path | None = None, out: TextIO | None = None) -> int:
    """Run every check; 0 if all pass, 1 if any fails (each failure says what went wrong)."""
    from studio import __version__
    from studio.paths import CLIP_TOKENIZER, DEMO_CHECKPOINT, MODEL_CONFIGS

    report = Report(out=out)
    frozen = getattr(sys, "frozen", False)
    report._print(
        f"Studio {__version__} self-test ({'packaged app' if frozen else 'Python'} "
        f"{sys.version.split()[0]}, {sys.platform})"
    )
    model = Path(model) if model is not None else DEMO_CHECKPOINT
    resources_ok = all(
        p.exists() for p in (model / "model_index.json", CLIP_TOKENIZER, MODEL_CONFIGS / "sd1")
    )
    report.check("resources", resources_ok, f"default model at {model}")
    if resources_ok:
        try:
            with _sandbox() as root:
                _generate_in_window(root, model, report)
        except Exception as exc:  # the self-test must report, never crash
            report.check("error", False, f"{type(exc).__name__}: {exc}")
            traceback.print_exc(file=out or sys.stderr)
    report._print("self-test passed" if report.passed else "self-test FAILED")
    return 0 if report.passed else 1
