"""The window end to end on a tiny random-weight model (offscreen Qt, CPU).

Each test drives the window the way a user does (panel fields, buttons, canvas strokes, the
node editor's ports) and asserts on what the user would see: staged pixels, files, messages.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image, ImageFilter, PngImagePlugin

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from studio.settings import Settings  # noqa: E402

JOB_TIMEOUT = 180_000  # ms: the CPU may be shared with other work


@pytest.fixture
def window(qtbot, tmp_path, tiny_sd1):
    from studio.ui.main_window import MainWindow

    settings = Settings(output_folder=str(tmp_path / "out"), device="cpu")
    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    use_tiny_model(win, tiny_sd1)
    yield win
    win.close()


def use_tiny_model(win, tiny) -> None:
    doc = win.document
    doc.set_param("model", "path", str(tiny.single_file))
    doc.set_param("model", "config", str(tiny.config_folder))
    set_field(win, "sample", "steps", 2)
    if "latent" in doc.graph.nodes:
        set_field(win, "latent", "width", 64)
        set_field(win, "latent", "height", 64)


def set_field(win, node: str, param: str, value) -> None:
    """Edit a panel field as a user does (the widget, not the document)."""
    widget = win.panel.field(node, param).widget
    if hasattr(widget, "setValue"):
        widget.setValue(value)
    elif hasattr(widget, "setPlainText"):
        widget.setPlainText(value)
    else:
        raise AssertionError(f"no way to set {node}.{param}")


def generate_and_wait(qtbot, win) -> None:
    with qtbot.waitSignal(win.bridge.busyChanged, timeout=10_000):
        qtbot.mouseClick(win.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not win.bridge.busy, timeout=JOB_TIMEOUT)


def test_generate_from_the_panel_stages_a_result(qtbot, window, tmp_path):
    set_field(window, "positive", "text", "a red square")
    assert window.document.param_value("positive", "text") == "a red square"
    generate_and_wait(qtbot, window)
    assert not window.message.isVisible(), window.message.text()
    assert window.canvas.staged_count() == 1
    staged = window.canvas.staged_image()
    assert staged.size == (64, 64) and np.asarray(staged).std() > 0
    saved = list((tmp_path / "out").glob("*.png"))
    assert len(saved) == 1
    qtbot.waitUntil(lambda: window.gallery.count() == 1)
    assert window.gallery.paths() == [str(saved[0])]
    window.canvas.accept_staged()
    assert window.canvas.has_image() and window.canvas.staged_count() == 0


def test_img2img_without_an_image_says_so(qtbot, window):
    qtbot.mouseClick(
        window.panel.findChild(type(window.panel.generate_button), "mode-img2img"),
        Qt.MouseButton.LeftButton,
    )
    assert window.mode == "img2img" and "denoise" in {
        e.param for e in window.document.graph.exposed
    }
    qtbot.mouseClick(window.panel.generate_button, Qt.MouseButton.LeftButton)
    assert window.message.isVisible() and "open" in window.message.text().lower()
    assert not window.bridge.busy


def test_paint_a_mask_and_inpaint_keeps_pixels_outside_it(qtbot, window, tiny_sd1):
    rng = np.random.default_rng(0)
    original = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), "RGB")
    window.canvas.open_image(original, "noise.png")
    window.switch_mode("inpaint")
    assert window.panel.mode() == "inpaint"
    # The model and the seed carry over the mode switch; steps too.
    assert window.document.param_value("model", "config") == str(tiny_sd1.config_folder)
    assert window.document.param_value("sample", "steps") == 2
    qtbot.mouseClick(window.panel.generate_button, Qt.MouseButton.LeftButton)
    assert "mask" in window.message.text().lower() and not window.bridge.busy

    window.canvas.set_brush_size(12)
    window.canvas.paint_stroke([(26, 32), (38, 32)])
    mask = window.canvas.mask()
    assert mask is not None and mask.getbbox() is not None
    generate_and_wait(qtbot, window)
    assert window.canvas.staged_count() == 1, window.message.text()
    window.canvas.accept_staged()
    result = np.asarray(window.canvas.flattened().convert("RGB")).astype(int)
    # Outside the mask grown by the feather (8 px) the pixels are the original's.
    reach = mask.point(lambda v: 255 if v else 0).filter(ImageFilter.MaxFilter(2 * 10 + 1))
    outside = np.asarray(reach) == 0
    assert outside.sum() > 1000
    assert np.array_equal(result[outside], np.asarray(original).astype(int)[outside])
    inside = np.asarray(mask) > 200
    assert np.abs(result[inside] - np.asarray(original).astype(int)[inside]).mean() > 1


def test_cancel_mid_run_then_generate_again(qtbot, window):
    set_field(window, "sample", "steps", 400)
    steps: list[int] = []
    window.bridge.progress.connect(lambda node, step, total, left: steps.append(step))
    qtbot.mouseClick(window.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=JOB_TIMEOUT)
    assert window.progress.isVisible() and "step" in window.progress.bar.format()
    started = time.perf_counter()
    with qtbot.waitSignal(window.bridge.cancelled, timeout=30_000):
        QTest.keyClick(window, Qt.Key.Key_Escape)
    assert time.perf_counter() - started < 10
    assert max(steps) < 400
    qtbot.waitUntil(lambda: not window.bridge.busy, timeout=10_000)
    assert window.canvas.staged_count() == 0 and not window.progress.isVisible()

    set_field(window, "sample", "steps", 2)
    generate_and_wait(qtbot, window)
    assert window.canvas.staged_count() == 1, window.message.text()


def test_closing_the_window_during_a_job_cancels_it(qtbot, window):
    set_field(window, "sample", "steps", 400)
    steps: list[int] = []
    window.bridge.progress.connect(lambda node, step, total, left: steps.append(step))
    qtbot.mouseClick(window.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(steps) >= 1, timeout=JOB_TIMEOUT)
    window.close()
    # Closing does not wait on the GUI thread; the cancelled job stops at its next step.
    thread = window.bridge.runtime._thread
    qtbot.waitUntil(lambda: thread is None or not thread.is_alive(), timeout=10_000)
    assert max(steps) < 400


def test_node_editor_links_refuses_wrong_types_and_the_panel_follows(qtbot, window):
    window.tabs.setCurrentWidget(window.node_editor)
    scene = window.node_editor.scene()
    messages: list[str] = []
    window.node_editor.message.connect(messages.append)

    def port(node_id: str, name: str, output: bool):
        return next(
            p for p in scene.nodes[node_id].ports() if p.name == name and p.is_output == output
        )

    # Connect two ports: a second empty latent now feeds the sampler.
    new = window.document.add_node("EmptyLatent", (300, 600))
    assert scene.connect_items(port(new, "latent", True), port("sample", "latent", False)) is None
    assert window.document.graph.inputs_of("sample")["latent"].src == new
    # A model cannot go where a latent is expected: refused, and the user is told why.
    reason = scene.drop_link(
        port("model", "model", True), port("sample", "latent", False), scene.nodes["sample"].pos()
    )
    assert reason and "LATENT" in reason and "MODEL" in reason
    assert any("LATENT" in m for m in messages)
    assert window.document.graph.inputs_of("sample")["latent"].src == new
    # A parameter changed in the node editor shows in the panel.
    steps = scene.nodes["sample"].form.fields["steps"]
    steps.edited.emit(7)
    assert window.document.param_value("sample", "steps") == 7
    assert window.panel.field("sample", "steps").widget.value() == 7
    # And the other way round.
    set_field(window, "sample", "cfg_scale", 3.5)
    assert scene.nodes["sample"].form.fields["cfg_scale"].value() == 3.5


def test_undo_and_redo_a_stroke(qtbot, window):
    window.canvas.open_image(Image.new("RGB", (64, 64), (40, 90, 160)), "blue.png")
    window.canvas.set_brush_size(10)
    window.canvas.fit()
    qtbot.wait(50)
    view = window.canvas.view.viewport()
    centre = view.rect().center()
    QTest.mousePress(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
    for dx in range(0, 60, 6):
        QTest.mouseMove(view, centre + QPoint(dx, 0))
    QTest.mouseRelease(
        view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre + QPoint(60, 0)
    )
    painted = window.canvas.mask()
    assert painted is not None and painted.getbbox() is not None
    window.canvas.setFocus()
    window._follow_focus()
    assert window.undo_group.activeStack() is window.canvas.undo_stack
    undo = window.undo_group.createUndoAction(window)
    redo = window.undo_group.createRedoAction(window)
    undo.trigger()
    assert window.canvas.mask() is None
    redo.trigger()
    assert np.array_equal(np.asarray(window.canvas.mask()), np.asarray(painted))


def _png_with_text(path, key: str, text: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text(key, text)
    Image.new("RGB", (64, 64), (10, 20, 30)).save(path, pnginfo=info)


def test_restore_parameters_from_an_a1111_png(qtbot, window, tmp_path):
    path = tmp_path / "a1111.png"
    _png_with_text(
        path,
        "parameters",
        "a lighthouse at dusk\nNegative prompt: blurry\n"
        "Steps: 13, Sampler: DPM++ 2M Karras, CFG scale: 4.5, Seed: 4242, Size: 96x128, "
        "Model: nowhere",
    )
    window.session.drop_file(str(path))  # what dropping it on the window does
    doc, panel = window.document, window.panel
    assert doc.param_value("positive", "text") == "a lighthouse at dusk"
    assert panel.field("positive", "text").widget.toPlainText() == "a lighthouse at dusk"
    assert panel.field("negative", "text").widget.toPlainText() == "blurry"
    assert panel.field("sample", "steps").widget.value() == 13
    assert panel.field("sample", "sampler").widget.currentText() == "DPM++ 2M Karras"
    assert panel.field("sample", "cfg_scale").widget.value() == 4.5
    assert panel.field("sample", "seed").line.text() == "4242"
    assert (doc.param_value("latent", "width"), doc.param_value("latent", "height")) == (96, 128)
    assert "nowhere" in window.statusBar().currentMessage()
    # One undo step puts everything back.
    doc.undo_stack.undo()
    assert doc.param_value("sample", "steps") == 2


def test_restore_parameters_from_our_own_png_loads_its_workflow(qtbot, window, tmp_path):
    set_field(window, "positive", "text", "a blue circle")
    seed = window.panel.field("sample", "seed")
    seed.line.setText("77")
    seed.line.editingFinished.emit()
    generate_and_wait(qtbot, window)
    saved = next((tmp_path / "out").glob("*.png"))
    set_field(window, "positive", "text", "something else")
    window.switch_mode("img2img")
    assert window.session.restore_parameters(str(saved))
    assert window.mode == "txt2img" and window.panel.mode() == "txt2img"
    assert window.panel.field("positive", "text").widget.toPlainText() == "a blue circle"
    assert window.panel.field("sample", "seed").line.text() == "77"
    assert window.document.param_value("latent", "width") == 64


def test_export_never_overwrites(qtbot, window, tmp_path):
    window.canvas.open_image(Image.new("RGB", (32, 32), (200, 10, 10)), "red.png")
    target = tmp_path / "export.png"
    target.write_bytes(b"keep me")
    saved = window.session.export(str(target))
    assert saved is not None and saved != target and target.read_bytes() == b"keep me"
    assert Image.open(saved).getpixel((5, 5)) == (200, 10, 10)


def test_window_modules_import_no_torch():
    from tests.test_layering import imported_after

    modules = imported_after(
        "import studio.ui.app, studio.ui.main_window; "
        "from studio.nodes.registry import specs; specs()"
    )
    assert "PySide6" in modules and "torch" not in modules and "diffusers" not in modules


def test_ctrl_enter_in_the_prompt_generates(qtbot, window):
    prompt = window.panel.field("positive", "text").widget
    prompt.setFocus()
    with qtbot.waitSignal(window.bridge.busyChanged, timeout=10_000):
        QTest.keyClick(prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert "\n" not in prompt.toPlainText()
    qtbot.waitUntil(lambda: not window.bridge.busy, timeout=JOB_TIMEOUT)
    assert window.canvas.staged_count() == 1


def test_choosing_a_model_sets_its_native_size_unless_set_by_hand(qtbot, window, tiny_sd1):
    from studio.engine.sizes import config_native_size

    native = config_native_size(tiny_sd1.config_folder)
    window.document.set_param("latent", "width", native * 2)  # not through the panel
    window.panel.size_by_hand = False
    field = window.panel.field("model", "path")
    field.edited.emit(str(tiny_sd1.config_folder))  # what picking it in the selector does
    assert window.document.param_value("model", "path") == str(tiny_sd1.config_folder)
    assert window.document.param_value("model", "config") == ""
    assert window.document.param_value("latent", "width") == native
    set_field(window, "latent", "width", 128)
    field.edited.emit(str(tiny_sd1.single_file))
    qtbot.wait(300)
    assert window.document.param_value("latent", "width") == 128


def test_a_model_brings_its_recommended_cfg_and_a_hand_set_one_stays(qtbot, window, tiny_sd1):
    from studio.paths import DEMO_CHECKPOINT

    # The window opened on the bundled model, which recommends CFG 3 (its studio.json).
    assert window.document.param_value("sample", "cfg_scale") == 3.0
    field = window.panel.field("model", "path")
    field.edited.emit(str(tiny_sd1.config_folder))  # recommends nothing: the usual 7 again
    assert window.document.param_value("sample", "cfg_scale") == 7.0
    field.edited.emit(str(DEMO_CHECKPOINT))
    assert window.document.param_value("sample", "cfg_scale") == 3.0
    set_field(window, "sample", "cfg_scale", 5.0)
    field.edited.emit(str(tiny_sd1.single_file))
    assert window.document.param_value("sample", "cfg_scale") == 5.0


def test_upscale_replaces_the_picture_with_a_bigger_one(qtbot, window):
    original = Image.new("RGB", (40, 30), (250, 120, 10))
    window.canvas.open_image(original, "orange.png")
    window.switch_mode("upscale")
    generate_and_wait(qtbot, window)
    assert not window.message.isVisible(), window.message.text()
    # The default upscale workflow runs the bundled x4 model.
    assert window.canvas.image_size() == (160, 120)
    window.canvas.undo_stack.undo()
    assert window.canvas.image_size() == (40, 30)
