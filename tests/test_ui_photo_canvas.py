"""The canvas with pictures larger than the model, driven as a user does (offscreen, CPU, the
bundled model): generation region, photo inpainting, previews in place, outpainting,
selections, layers, and mode switches that keep every setting."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPointF, Qt  # noqa: E402
from PySide6.QtGui import QPainterPath  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from studio.paths import DEMO_CHECKPOINT  # noqa: E402
from studio.settings import Settings  # noqa: E402

JOB_TIMEOUT = 180_000

pytestmark = pytest.mark.skipif(not DEMO_CHECKPOINT.is_dir(), reason="bundled model missing")


def photo(width: int = 2000, height: int = 1500) -> Image.Image:
    """A photo-like picture: smooth gradients with fine noise."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(3)
    rgb = np.stack([(x / 9) % 256, (y / 7) % 256, ((x + y) / 13) % 256], -1)
    rgb = rgb + rng.normal(0, 5, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture
def window(qtbot, tmp_path):
    from studio.ui.main_window import MainWindow

    settings = Settings(output_folder=str(tmp_path / "out"), device="cpu")
    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.resize(1300, 850)
    win.show()
    win.document.set_param("sample", "steps", 4)
    yield win
    win.close()


def generate_and_wait(qtbot, win) -> None:
    with qtbot.waitSignal(win.bridge.busyChanged, timeout=10_000):
        qtbot.mouseClick(win.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not win.bridge.busy, timeout=JOB_TIMEOUT)
    assert not win.message.isVisible(), win.message.text()


def select_rect(win, x0, y0, x1, y1, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """Drag a rectangle selection on the canvas with the mouse (image pixels)."""
    view = win.canvas.view
    win.canvas.set_tool("rectangle")
    to_view = view.viewportTransform()
    start = to_view.map(QPointF(x0, y0)).toPoint()
    end = to_view.map(QPointF(x1, y1)).toPoint()
    viewport = view.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, modifier, start)
    QTest.mouseMove(viewport, (start + end) / 2)
    QTest.mouseMove(viewport, end)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, modifier, end)


def test_photo_inpaint_in_a_region_keeps_the_rest_and_previews_in_place(qtbot, window):
    original = photo()
    window.canvas.open_image(original, "photo.png")
    window.switch_mode("inpaint")
    window.document.set_param("positive", "text", "a red circle")
    # Masked area only is the default on a picture larger than the model.
    assert window.document.param_value("crop", "enabled") is True
    select_rect(window, 900, 700, 964, 764)
    mask = window.canvas.mask()
    assert mask is not None and mask.getbbox() == pytest.approx((900, 700, 964, 764), abs=2)
    # The region: around the mask, set with the canvas's own button.
    window.canvas.action("fit_region").trigger()
    region = window.canvas.region()
    assert region is not None and region[2] < 300
    assert window.document.param_value("region", "width") == region[2]
    previews = []

    def grab_preview(_image) -> None:
        item = window.canvas.view._scene._preview_item
        previews.append((item.sceneBoundingRect(), item.pixmap().toImage()))

    window.bridge.preview.connect(grab_preview)
    generate_and_wait(qtbot, window)
    assert window.canvas.staged_count() == 1
    # Previews cover the masked-area crop only, and are transparent away from the mask.
    assert previews
    rect, image = previews[-1]
    assert rect.width() < 400 and rect.height() < 400
    assert rect.contains(QPointF(932, 732))
    corner = image.pixelColor(0, 0)
    assert corner.alpha() == 0
    window.canvas.accept_staged()
    layers = window.canvas.layer_list()
    assert len(layers) == 2 and "red circle" in layers[-1].name and "seed" in layers[-1].name
    assert layers[-1].rect.width() < 400  # only the changed area became a layer
    result = np.asarray(window.canvas.flattened()).astype(int)
    reach = mask.point(lambda v: 255 if v else 0).filter(ImageFilter.MaxFilter(2 * 10 + 1))
    outside = np.asarray(reach) == 0
    assert np.array_equal(result[outside], np.asarray(original).astype(int)[outside])
    inside = np.asarray(mask) > 200
    assert np.abs(result[inside] - np.asarray(original).astype(int)[inside]).mean() > 5
    # The layer can be hidden (one undo step), which shows the original again.
    window.layers_panel.list.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert not window.canvas.layer_list()[-1].visible
    assert np.array_equal(np.asarray(window.canvas.flattened()), np.asarray(original))
    window.canvas.undo_stack.undo()
    assert window.canvas.layer_list()[-1].visible


def test_text_to_image_fills_the_region_not_a_corner(qtbot, window):
    window.canvas.open_image(photo(640, 480), "wide.png")
    window.document.set_param("positive", "text", "a blue square on a yellow background")
    generate_and_wait(qtbot, window)
    staged = window.canvas.staged_image()
    # The whole 4:3 picture, generated at the model's size in its shape and scaled back.
    assert staged.size == (640, 480)
    window.canvas.accept_staged()
    assert window.canvas.layer_list()[-1].rect.getRect() == (0, 0, 640, 480)


def test_outpaint_fills_the_new_area_from_the_edge_and_generates_it(qtbot, window):
    original = photo(256, 192)
    window.canvas.open_image(original, "small.png")
    from studio.ui.canvas_actions import expand_canvas

    assert expand_canvas(window, (0, 0, 64, 0))
    assert window.mode == "inpaint" and window.canvas.image_size() == (320, 192)
    mask = np.asarray(window.canvas.mask())
    assert mask[:, 256:].min() == 255 and mask[:, :256].max() == 0
    flat = np.asarray(window.canvas.flattened())
    assert flat[:, 256:].mean() > 20  # filled from the edge, not black
    generate_and_wait(qtbot, window)
    window.canvas.accept_staged()
    result = np.asarray(window.canvas.flattened()).astype(int)
    assert result[:, 270:].std() > 3 and result[:, 270:].mean() > 20
    # The old picture, away from the new area's feathered edge, is untouched.
    assert np.array_equal(result[:, :240], np.asarray(original).astype(int)[:, :240])


def test_a_region_does_not_outlive_its_picture(qtbot, window):
    """Another picture (or the same one grown) works on the whole picture again; a region typed
    off the picture in the node editor is refused in one sentence, with no job started."""
    window.canvas.open_image(photo(2000, 1500), "big.png")
    window.switch_mode("inpaint")
    select_rect(window, 1500, 1100, 1600, 1200)
    window.canvas.action("fit_region").trigger()
    assert window.document.param_value("region", "x") > 1000
    window.canvas.open_image(photo(640, 480), "small.png")
    assert window.canvas.region() is None
    assert window.document.param_value("region", "width") == 0
    window.canvas.undo_stack.undo()  # the big picture is back; its region is not needed
    window.document.set_param("region", "x", 5000)
    window.document.set_param("region", "width", 64)
    window.document.set_param("region", "height", 64)
    select_rect(window, 10, 10, 60, 60)
    window.session.generate()
    assert not window.bridge.busy
    assert window.message.isVisible() and "outside" in window.message.text()
    # Upscaling works on the whole picture: no frame is drawn there.
    frame = window.canvas.view.region_frame
    assert frame.isVisible()
    window.switch_mode("upscale")
    assert not frame.isVisible()
    window.switch_mode("inpaint")
    assert frame.isVisible()


def test_selections_add_subtract_invert_and_grow(qtbot, window):
    window.canvas.open_image(photo(400, 300), "p.png")
    select_rect(window, 10, 10, 110, 110)
    first = np.asarray(window.canvas.mask())
    assert first[50, 50] == 255 and first[200, 200] == 0
    select_rect(window, 200, 150, 260, 210, Qt.KeyboardModifier.ShiftModifier)
    both = np.asarray(window.canvas.mask())
    assert both[50, 50] == 255 and both[180, 230] == 255
    select_rect(window, 40, 40, 80, 80, Qt.KeyboardModifier.AltModifier)
    cut = np.asarray(window.canvas.mask())
    assert cut[60, 60] == 0 and cut[20, 20] == 255
    ellipse = QPainterPath()
    ellipse.addEllipse(300, 20, 60, 60)
    window.canvas.apply_selection(ellipse, "replace")
    only = np.asarray(window.canvas.mask())
    assert only[50, 330] == 255 and only[20, 20] == 0 and only[22, 302] == 0
    window.canvas.grow_mask(8)
    assert np.asarray(window.canvas.mask())[50, 295] == 255
    window.canvas.undo_stack.undo()
    assert np.asarray(window.canvas.mask())[50, 295] == 0
    # The outline is drawn while painting.
    qtbot.waitUntil(lambda: not window.canvas.view._mask_outline.isEmpty(), timeout=2000)
    window.canvas.invert_mask()
    assert np.asarray(window.canvas.mask())[20, 20] == 255


def test_mode_round_trip_keeps_every_setting_and_is_undoable(qtbot, window):
    doc = window.document
    doc.set_param("positive", "text", "a green diamond")
    doc.set_param("negative", "text", "blurry")
    doc.set_param("sample", "seed", 4242)
    doc.set_param("sample", "steps", 7)
    doc.set_param("sample", "cfg_scale", 4.5)
    doc.set_param("sample", "sampler", "DDIM")
    model = doc.param_value("model", "path")
    window.switch_mode("upscale")
    assert "positive" not in doc.graph.nodes
    window.switch_mode("txt2img")
    values = {
        ("positive", "text"): "a green diamond",
        ("negative", "text"): "blurry",
        ("sample", "seed"): 4242,
        ("sample", "steps"): 7,
        ("sample", "cfg_scale"): 4.5,
        ("sample", "sampler"): "DDIM",
        ("model", "path"): model,
    }
    for (node, param), value in values.items():
        assert doc.param_value(node, param) == value, (node, param)
    window.switch_mode("inpaint")
    assert doc.param_value("positive", "text") == "a green diamond"
    doc.undo_stack.undo()
    assert window.mode == "txt2img" and window.panel.mode() == "txt2img"
    doc.undo_stack.undo()
    assert window.mode == "upscale"


def test_layers_panel_edits_are_undoable_and_saved_as_openraster(qtbot, window, tmp_path):
    from studio.formats.openraster import read_ora
    from studio.ui.canvas_actions import save_layered

    base = photo(200, 150)
    window.canvas.open_image(base, "base.png")
    window.canvas.stage([Image.new("RGB", (50, 40), (255, 0, 0))], (20, 30, 50, 40), ["red"])
    # Alt+Enter accepts wherever focus is, and never types into the prompt.
    prompt = window.panel.field("positive", "text").widget
    prompt.setFocus()
    qtbot.waitUntil(prompt.hasFocus, timeout=2000)
    before = prompt.toPlainText()
    QTest.keyClick(prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.AltModifier)
    assert prompt.toPlainText() == before
    assert window.canvas.staged_count() == 0
    assert [name for name, _ in window.canvas.layers()] == ["base.png", "red"]
    edits = window.canvas.layer_edits
    edits.set_opacity(1, 0.5)
    edits.rename(1, "Red patch")
    flat = np.asarray(window.canvas.flattened()).astype(int)
    assert 100 < flat[50, 40, 0] < 255  # half the red over the photo
    saved = save_layered(window, str(tmp_path / "canvas.ora"))
    size, layers = read_ora(saved)
    assert size == (200, 150) and [layer.name for layer in layers] == ["base.png", "Red patch"]
    assert (layers[1].x, layers[1].y, layers[1].opacity) == (20, 30, 0.5)
    edits.merge_down(1)
    assert len(window.canvas.layer_list()) == 1
    assert np.array_equal(np.asarray(window.canvas.flattened()).astype(int), flat)
    window.canvas.undo_stack.undo()
    assert len(window.canvas.layer_list()) == 2
    edits.move(1, 0)
    assert window.canvas.layer_list()[0].name == "Red patch"
    edits.delete(0)
    assert [layer.name for layer in window.canvas.layer_list()] == ["base.png"]
    # The shortcuts dialog lists the canvas tools.
    from studio.ui.canvas_actions import shortcuts

    keys = dict(shortcuts(window))
    assert {"M", "O", "L", "G"} <= set(keys)
