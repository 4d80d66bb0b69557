"""The canvas as a user meets it: open, paint a mask, undo, preview, stage and accept results.

Strokes are real mouse events on the view's viewport, placed with view.mapFromScene (scene
coordinates are image pixels). Assertions are on pixels: image(), mask() and grabs.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from studio.errors import ImageError
from studio.ui.canvas import Canvas
from tests.conftest import ROOT

WIDTH, HEIGHT = 320, 240


def photo(seed: int = 0, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def pixels_of(image: Image.Image | None) -> np.ndarray:
    assert image is not None
    return np.asarray(image)


@pytest.fixture
def canvas(qtbot) -> Canvas:
    widget = Canvas()
    qtbot.addWidget(widget)
    widget.resize(800, 600)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def opened(canvas) -> Canvas:
    canvas.open_image(photo(), "Photo")
    return canvas


def at(canvas: Canvas, x: float, y: float) -> QPoint:
    """The viewport position of image pixel (x, y)."""
    return canvas.view.mapFromScene(QPointF(x, y))


def drag(
    canvas: Canvas, points: list[tuple[float, float]], button=Qt.MouseButton.LeftButton
) -> None:
    viewport = canvas.view.viewport()
    QTest.mousePress(viewport, button, Qt.KeyboardModifier.NoModifier, at(canvas, *points[0]))
    for point in points[1:]:
        QTest.mouseMove(viewport, at(canvas, *point))
    QTest.mouseRelease(viewport, button, Qt.KeyboardModifier.NoModifier, at(canvas, *points[-1]))


def test_open_image_reads_back_identical(canvas, qtbot):
    original = photo()
    assert not canvas.has_image() and canvas.image() is None and canvas.mask() is None
    with qtbot.waitSignal(canvas.imageChanged):
        canvas.open_image(original, "Photo")
    assert canvas.has_image()
    assert canvas.image_size() == (WIDTH, HEIGHT)
    assert np.array_equal(pixels_of(canvas.image()), np.asarray(original))
    assert np.array_equal(pixels_of(canvas.flattened()), np.asarray(original))
    assert canvas.layers() == [("Photo", True)]
    assert canvas.mask() is None

    canvas.undo_stack.undo()
    assert not canvas.has_image() and canvas.image() is None


def test_a_stroke_paints_the_mask_and_is_one_undo_step(opened, qtbot):
    opened.set_tool("brush")
    opened.set_brush_size(20)
    opened.set_brush_hardness(1.0)
    steps = opened.undo_stack.count()
    with qtbot.waitSignal(opened.maskChanged):
        drag(opened, [(60, 120), (100, 120), (140, 120), (180, 120)])
    assert opened.undo_stack.count() == steps + 1

    painted = pixels_of(opened.mask())
    assert opened.mask().mode == "L" and opened.mask().size == (WIDTH, HEIGHT)
    assert (painted[115:126, 65:176] == 255).all()  # along the stroke
    assert painted[120, 300] == 0 and painted[20, 120] == 0 and painted[200, 120] == 0  # far away
    assert painted[120, 60 - 13] == 0  # just beyond the brush radius at the start

    opened.undo_stack.undo()
    assert opened.mask() is None
    opened.undo_stack.redo()
    assert np.array_equal(pixels_of(opened.mask()), painted)


def test_eraser_removes_only_what_it_touches(opened):
    opened.set_brush_size(30)
    opened.set_brush_hardness(1.0)
    drag(opened, [(40, 100), (280, 100)])
    opened.set_tool("eraser")
    drag(opened, [(160, 60), (160, 140)])
    mask = pixels_of(opened.mask())
    assert mask[100, 160] == 0 and mask[100, 60] == 255 and mask[100, 260] == 255


def test_soft_brush_fades_at_the_edge(opened):
    opened.set_brush_size(60)
    opened.set_brush_hardness(0.0)
    opened.paint_stroke([(160, 120)])
    row = pixels_of(opened.mask())[120, 160:195].astype(int)
    assert row[0] > 240 and row[-1] == 0
    assert np.all(np.diff(row) <= 0) and 0 < row[20] < 255


def test_painted_mask_shows_as_a_tint_over_the_image(opened):
    grey = Image.new("RGB", (WIDTH, HEIGHT), (100, 100, 100))
    opened.open_image(grey)
    opened.set_brush_size(80)
    opened.set_brush_hardness(1.0)
    drag(opened, [(160, 120), (161, 120)])
    QApplication.processEvents()
    shot = opened.view.viewport().grab().toImage()
    tinted = shot.pixelColor(at(opened, 160, 120))
    plain = shot.pixelColor(at(opened, 20, 20))
    assert (plain.red(), plain.green(), plain.blue()) == (100, 100, 100)
    assert tinted.red() > 150 and tinted.green() < 90


def test_clear_invert_and_set_mask_are_undoable(opened, qtbot):
    opened.set_brush_size(20)
    drag(opened, [(100, 100), (120, 100)])
    painted = pixels_of(opened.mask())

    opened.invert_mask()
    assert np.array_equal(pixels_of(opened.mask()), 255 - painted)
    opened.undo_stack.undo()
    assert np.array_equal(pixels_of(opened.mask()), painted)

    with qtbot.waitSignal(opened.maskChanged):
        opened.clear_mask()
    assert opened.mask() is None
    opened.undo_stack.undo()
    assert np.array_equal(pixels_of(opened.mask()), painted)

    square = np.zeros((HEIGHT, WIDTH), np.uint8)
    square[10:50, 200:300] = 255
    opened.set_mask(Image.fromarray(square, "L"))
    assert np.array_equal(pixels_of(opened.mask()), square)
    opened.undo_stack.undo()
    assert np.array_equal(pixels_of(opened.mask()), painted)

    with pytest.raises(ImageError, match="same size"):
        opened.set_mask(Image.new("L", (10, 10)))


def test_stage_browse_accept_and_undo(opened, qtbot):
    original = pixels_of(opened.image())
    opened.set_brush_size(20)
    drag(opened, [(100, 100), (120, 100)])
    painted = pixels_of(opened.mask())
    first, second = photo(1), photo(2)

    with qtbot.waitSignal(opened.stagingChanged):
        opened.stage([first, second])
    assert (opened.staged_count(), opened.staged_index()) == (2, 0)
    assert opened.staging_bar.isVisible() and opened.staging_bar.counter.text() == "1/2"
    assert np.array_equal(pixels_of(opened.image()), original)  # staged is not accepted yet
    opened.next_staged()
    assert opened.staged_index() == 1 and opened.staging_bar.counter.text() == "2/2"
    opened.next_staged()
    assert opened.staged_index() == 0
    opened.previous_staged()
    assert opened.staged_index() == 1
    assert np.array_equal(pixels_of(opened.staged_image()), np.asarray(second))

    steps = opened.undo_stack.count()
    opened.accept_staged()
    assert opened.undo_stack.count() == steps + 1
    assert opened.staged_count() == 0 and not opened.staging_bar.isVisible()
    assert np.array_equal(pixels_of(opened.image()), np.asarray(second))
    assert opened.layers() == [("Photo", True), ("Result 1", True)]
    assert opened.mask() is None

    opened.undo_stack.undo()
    assert np.array_equal(pixels_of(opened.image()), original)
    assert np.array_equal(pixels_of(opened.mask()), painted)
    assert opened.layers() == [("Photo", True)]
    opened.undo_stack.redo()
    assert np.array_equal(pixels_of(opened.image()), np.asarray(second))

    opened.set_layer_visible(1, False)
    assert np.array_equal(pixels_of(opened.image()), original)


def test_discard_leaves_the_image_alone(opened, qtbot):
    original = pixels_of(opened.image())
    opened.stage([photo(3)])
    with qtbot.waitSignal(opened.stagingChanged):
        opened.discard_staged()
    assert opened.staged_count() == 0
    assert np.array_equal(pixels_of(opened.image()), original)
    assert opened.layers() == [("Photo", True)]


def test_accepting_with_no_image_open_makes_it_the_image(canvas):
    result = photo(4, size=(200, 150))
    canvas.stage([result])
    canvas.accept_staged()
    assert canvas.image_size() == (200, 150)
    assert np.array_equal(pixels_of(canvas.image()), np.asarray(result))
    canvas.undo_stack.undo()
    assert not canvas.has_image()


def test_staged_result_of_another_size_covers_the_image(opened):
    opened.stage([Image.new("RGB", (64, 48), (10, 200, 30))])
    opened.accept_staged()
    image = pixels_of(opened.image())
    assert image.shape == (HEIGHT, WIDTH, 3)
    assert tuple(image[120, 160]) == (10, 200, 30) and tuple(image[2, 2]) == (10, 200, 30)


def test_preview_shows_but_never_changes_the_image(opened):
    original = pixels_of(opened.image())
    preview = np.zeros((30, 40, 3), np.uint8)
    preview[...] = (0, 255, 0)
    opened.show_preview(preview)
    QApplication.processEvents()
    shown = opened.view.viewport().grab().toImage().pixelColor(at(opened, 160, 120))
    assert (shown.red(), shown.green(), shown.blue()) == (0, 255, 0)
    assert np.array_equal(pixels_of(opened.image()), original)
    opened.show_preview(None)
    QApplication.processEvents()
    shown = opened.view.viewport().grab().toImage().pixelColor(at(opened, 160, 120))
    assert (shown.red(), shown.green(), shown.blue()) != (0, 255, 0)


def test_wheel_zooms_around_the_pointer(opened):
    before = opened.zoom()
    viewport = opened.view.viewport()
    pointer = at(opened, 80, 60)
    wheel = QWheelEvent(
        QPointF(pointer),
        QPointF(viewport.mapToGlobal(pointer)),
        QPoint(),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(viewport, wheel)
    assert opened.zoom() == pytest.approx(before * 1.25)
    under = opened.view.mapToScene(pointer)
    assert abs(under.x() - 80) < 2 and abs(under.y() - 60) < 2

    opened.actual_size()
    assert opened.zoom() == 1.0
    opened.fit()
    visible = opened.view.mapToScene(opened.view.viewport().rect()).boundingRect()
    assert visible.contains(0, 0) and visible.contains(WIDTH - 1, HEIGHT - 1)


def test_middle_drag_and_the_pan_tool_move_the_view_without_painting(opened):
    opened.actual_size()
    centre = QPoint(opened.view.viewport().width() // 2, opened.view.viewport().height() // 2)
    before = opened.view.mapToScene(centre)
    viewport = opened.view.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(viewport, centre + QPoint(40, 30))
    QTest.mouseRelease(
        viewport,
        Qt.MouseButton.MiddleButton,
        Qt.KeyboardModifier.NoModifier,
        centre + QPoint(40, 30),
    )
    moved = opened.view.mapToScene(centre)
    assert (before.x() - moved.x(), before.y() - moved.y()) == (40, 30)

    opened.set_tool("pan")
    drag(opened, [(100, 100), (150, 120)])
    assert opened.mask() is None and opened.view.mapToScene(centre) != moved


def test_shortcuts_work_while_focus_is_in_the_canvas(opened, qtbot):
    opened.activateWindow()
    opened.view.setFocus()
    qtbot.waitUntil(lambda: opened.view.hasFocus())
    QTest.keyClick(opened.view, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert opened.zoom() == 1.0
    QTest.keyClick(opened.view, Qt.Key.Key_E)
    assert opened.tool() == "eraser"
    opened.stage([photo(5)])
    QTest.keyClick(opened.view, Qt.Key.Key_Return)
    assert opened.staged_count() == 0 and len(opened.layers()) == 2


def test_dropped_file_is_handed_to_the_window(opened, qtbot, tmp_path):
    path = tmp_path / "dropped.png"
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(path))])
    drop = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        data,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    # Qt delivers drop events only during a real drag, so the handler is called directly.
    opened.view.dragEnterEvent(drop)
    assert drop.isAccepted()
    with qtbot.waitSignal(opened.fileDropped) as dropped:
        opened.view.dropEvent(drop)
    assert dropped.args == [str(path)]
    assert opened.layers() == [("Photo", True)]  # the canvas did not open it itself


def test_paste_opens_the_clipboard_image_as_an_undo_step(opened):
    pasted = Image.new("RGB", (50, 40), (200, 10, 10))
    QGuiApplication.clipboard().setImage(
        QImage(pasted.tobytes(), 50, 40, 150, QImage.Format.Format_RGB888).copy()
    )
    opened.paste()
    assert opened.image_size() == (50, 40)
    assert tuple(pixels_of(opened.image())[20, 25]) == (200, 10, 10)
    opened.undo_stack.undo()
    assert opened.image_size() == (WIDTH, HEIGHT)


def test_canvas_imports_no_torch():
    code = "import sys, studio.ui.canvas; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_opening_another_picture_discards_the_staged_results(opened, qtbot):
    opened.stage([photo(3), photo(4)], rect=(10, 10, 50, 40))
    assert opened.staged_count() == 2
    with qtbot.waitSignal(opened.stagingChanged):
        opened.open_image(photo(5, size=(120, 90)), "Other")
    assert opened.staged_count() == 0 and not opened.staging_bar.isVisible()
    assert opened.image_size() == (120, 90)
    opened.accept_staged()  # nothing staged: nothing happens
    assert opened.layers() == [("Other", True)]
    opened.undo_stack.undo()
    assert opened.image_size() == (WIDTH, HEIGHT) and opened.staged_count() == 0
