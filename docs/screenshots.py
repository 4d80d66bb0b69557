"""Make the README's canvas screenshots by driving the window as a user does (offscreen).

    QT_QPA_PLATFORM=offscreen python docs/screenshots.py [--steps N]

Writes docs/screenshot-region.png (a picture larger than the model, a selection, the region
fitted to it, the result accepted as a layer), docs/screenshot-selection.png (ellipse plus
rectangle selection with its outline) and docs/screenshot-outpaint.png (the canvas grown on
the right and generated there). Uses the bundled model and a fresh output folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def wait(app, seconds: float, until=lambda: False) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        app.processEvents()
        time.sleep(0.01)


def drag(window, tool: str, x0: float, y0: float, x1: float, y1: float, modifier=None) -> None:
    """Drag a selection tool over image pixels (x0, y0) -> (x1, y1) with the mouse."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest

    modifier = modifier or Qt.KeyboardModifier.NoModifier
    view = window.canvas.view
    window.canvas.set_tool(tool)
    to_view = view.viewportTransform()
    start = to_view.map(QPointF(x0, y0)).toPoint()
    end = to_view.map(QPointF(x1, y1)).toPoint()
    viewport = view.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, modifier, start)
    QTest.mouseMove(viewport, (start + end) / 2)
    QTest.mouseMove(viewport, end)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, modifier, end)


def generate(app, window) -> None:
    window.session.generate()
    wait(app, 5, lambda: window.bridge.busy)
    wait(app, 600, lambda: not window.bridge.busy)
    if window.message.isVisible():
        raise SystemExit(f"the job failed: {window.message.text()}")


def grab(app, window, name: str) -> None:
    wait(app, 0.3)
    path = DOCS / name
    if not window.grab().save(str(path), "PNG"):
        raise SystemExit(f"could not write {path}")
    print(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    args = parser.parse_args()
    from PIL import Image
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from studio.settings import Settings
    from studio.ui.canvas_actions import expand_canvas
    from studio.ui.main_window import MainWindow
    from studio.ui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    settings = Settings(output_folder=tempfile.mkdtemp(prefix="studio-shots-"), device="cpu")
    apply_theme(app, settings.theme)
    window = MainWindow(settings)
    window.resize(1400, 860)
    window.show()
    # A picture three times the model's size each way.
    picture = Image.open(DOCS / "example.png").convert("RGB").resize((1536, 1024))

    # 1. Inpaint a small area of a large picture: select, fit the region, generate, accept.
    window.canvas.open_image(picture, "example.png")
    window.switch_mode("inpaint")
    window.document.set_param("sample", "steps", args.steps)
    window.document.set_param("positive", "text", "a red circle")
    drag(window, "ellipse", 250, 560, 520, 800)
    window.canvas.action("fit_region").trigger()
    generate(app, window)
    window.canvas.accept_staged()
    window.canvas.fit()
    grab(app, window, "screenshot-region.png")

    # 2. Selections: an ellipse, a rectangle added with Shift, a lasso taken away with Alt.
    window.canvas.clear_mask()
    drag(window, "ellipse", 1000, 150, 1300, 450)
    drag(window, "rectangle", 1150, 380, 1450, 560, Qt.KeyboardModifier.ShiftModifier)
    window.canvas.set_tool("lasso")
    window.canvas.fit()
    grab(app, window, "screenshot-selection.png")

    # 3. Outpaint: grow the canvas 512 px on the right and generate the new area.
    window.canvas.open_image(Image.open(DOCS / "example.png").convert("RGB"), "example.png")
    expand_canvas(window, (0, 0, 256, 0))
    window.document.set_param("sample", "steps", args.steps)
    window.document.set_param("positive", "text", "green hills under a blue sky")
    generate(app, window)
    window.canvas.fit()
    grab(app, window, "screenshot-outpaint.png")
    window.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
