"""The node editor on the default workflows: linking, editing, palette, clipboard, files, status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from studio.graph import serialize  # noqa: E402
from studio.graph.document import Link  # noqa: E402
from studio.nodes.registry import specs  # noqa: E402
from studio.ui.document import WorkflowDocument  # noqa: E402
from studio.ui.node_editor import NodeEditor  # noqa: E402
from studio.ui.node_editor.form import SHOW_IN_PANEL  # noqa: E402

WORKFLOWS = Path(__file__).resolve().parent.parent / "resources" / "workflows"


@pytest.fixture
def document(qtbot):
    return WorkflowDocument(serialize.load(WORKFLOWS / "txt2img.json"), specs())


@pytest.fixture
def editor(qtbot, document):
    widget = NodeEditor(document)
    qtbot.addWidget(widget)
    widget.resize(1400, 800)
    widget.show()
    qtbot.waitExposed(widget)
    widget.fit()
    return widget


def port(editor, node_id: str, name: str, output: bool):
    node = editor.scene().nodes[node_id]
    return (node.outputs if output else node.inputs)[name]


def viewport_point(editor, port_item) -> QPoint:
    return editor.view().mapFromScene(port_item.anchor())


def mouse_drag(editor, start: QPoint, end: QPoint) -> None:
    viewport = editor.view().viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    middle = (start + end) / 2
    QTest.mouseMove(viewport, middle)
    QTest.mouseMove(viewport, end)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def test_shows_every_node_and_link(editor, document):
    scene = editor.scene()
    assert set(scene.nodes) == set(document.graph.nodes)
    assert len(scene.links) == len(document.graph.links)
    assert scene.nodes["sample"].title == "Sample"


def test_mouse_drag_links_an_output_to_an_input(editor, document):
    document.disconnect_port("sample", "latent")
    assert "latent" not in document.graph.inputs_of("sample")
    out = port(editor, "latent", "latent", output=True)
    inp = port(editor, "sample", "latent", output=False)
    mouse_drag(editor, viewport_point(editor, out), viewport_point(editor, inp))
    assert Link("latent", "latent", "sample", "latent") in document.graph.links
    assert editor.scene().notice is None


def test_mouse_drag_from_a_connected_input_detaches_the_link(editor, document):
    inp = port(editor, "save", "image", output=False)
    start = viewport_point(editor, inp)
    mouse_drag(editor, start, start + QPoint(0, 150))
    assert "image" not in document.graph.inputs_of("save")
    document.undo_stack.undo()
    assert Link("place", "image", "save", "image") in document.graph.links


def test_scene_drop_links_ports(editor, document):
    scene = editor.scene()
    document.disconnect_port("decode", "latent")
    reason = scene.drop_link(
        port(editor, "decode", "latent", output=False),
        port(editor, "sample", "latent", output=True),
        QPointF(0, 0),
    )
    assert reason is None
    assert Link("sample", "latent", "decode", "latent") in document.graph.links
    assert len(scene.links) == len(document.graph.links)


def test_wrong_type_is_refused_visibly(editor, document, qtbot):
    before = list(document.graph.links)
    out = port(editor, "decode", "image", output=True)
    inp = port(editor, "sample", "model", output=False)
    with qtbot.waitSignal(editor.message) as said:
        editor.scene().drop_link(out, inp, inp.anchor())
    assert document.graph.links == before
    notice = editor.scene().notice
    assert notice is not None and notice.isVisible()
    assert "takes MODEL" in notice.toPlainText() and "gives IMAGE" in notice.toPlainText()
    assert said.args[0] == notice.toPlainText()


def test_wrong_type_by_mouse_is_refused(editor, document):
    before = list(document.graph.links)
    out = port(editor, "decode", "image", output=True)
    inp = port(editor, "positive", "model", output=False)
    # The model input is connected: dragging from the output side keeps it a fresh link.
    mouse_drag(editor, viewport_point(editor, out), viewport_point(editor, inp))
    assert document.graph.links == before
    assert "takes MODEL" in editor.scene().notice.toPlainText()


def test_editing_a_field_changes_the_graph(editor, document, qtbot):
    field = editor.scene().nodes["sample"].form.fields["steps"]
    with qtbot.waitSignal(document.paramChanged) as changed:
        field.spin.setValue(33)
    assert changed.args == ["sample", "steps", 33]
    assert document.graph.nodes["sample"].params["steps"] == 33

    text = editor.scene().nodes["positive"].form.fields["text"]
    text.text.setFocus()
    QTest.keyClicks(text.text, "a red fox")
    assert document.graph.nodes["positive"].params["text"] == "a red fox"
    document.undo_stack.undo()  # typing merges into one step
    assert document.graph.nodes["positive"].params["text"] == ""


def test_seed_takes_64_bit_values(editor, document):
    field = editor.scene().nodes["sample"].form.fields["seed"]
    field.line.setText(str(2**64 - 1))
    field.line.editingFinished.emit()
    assert document.graph.nodes["sample"].params["seed"] == 2**64 - 1
    document.set_param("sample", "seed", 2**63 + 5)
    assert field.line.text() == str(2**63 + 5)


def test_document_edits_show_in_the_fields(editor, document):
    form = editor.scene().nodes["sample"].form
    text_field = editor.scene().nodes["positive"].form.fields["text"]
    text_field.text.setFocus()
    document.set_param("sample", "cfg_scale", 4.5)
    document.set_param("sample", "sampler", "Heun")
    document.set_param("positive", "text", "from the panel")
    assert form.fields["cfg_scale"].spin.value() == 4.5
    assert form.fields["sampler"].combo.currentText() == "Heun"
    assert text_field.text.toPlainText() == "from the panel"
    # The scene was not rebuilt: the same field is still there and still has the keyboard.
    assert editor.scene().nodes["positive"].form.fields["text"] is text_field
    document.undo_stack.undo()
    assert text_field.text.toPlainText() == ""


def test_delete_and_undo(editor, document, qtbot):
    scene = editor.scene()
    scene.select_nodes(["decode"])
    editor.view().setFocus()
    QTest.keyClick(editor.view().viewport(), Qt.Key.Key_Delete)
    assert "decode" not in document.graph.nodes and "decode" not in scene.nodes
    assert all("decode" not in (k.src, k.dst) for k in document.graph.links)
    editor.undo_action.trigger()
    assert "decode" in document.graph.nodes and "decode" in scene.nodes
    assert len(scene.links) == len(document.graph.links) == 13
    editor.redo_action.trigger()
    assert "decode" not in scene.nodes


def test_copy_paste_keeps_links_among_copied_nodes(editor, document):
    scene = editor.scene()
    scene.select_nodes(["positive", "sample"])
    editor.copy_action.trigger()
    editor.paste_action.trigger()
    new_ids = set(scene.selected_ids())
    assert len(new_ids) == 2 and not new_ids & {"positive", "sample"}
    by_type = {document.graph.nodes[i].type: i for i in new_ids}
    assert Link(by_type["Prompt"], "conditioning", by_type["Sample"], "positive") in (
        document.graph.links
    )
    old, new = document.graph.nodes["sample"].position, document.graph.nodes[by_type["Sample"]]
    assert new.position == (old[0] + 40, old[1] + 40)
    assert len(document.graph.nodes) == 11
    document.undo_stack.undo()
    assert len(document.graph.nodes) == 9 and len(scene.nodes) == 9


def test_moving_a_selection_is_one_undo_step(editor, document):
    scene = editor.scene()
    scene.select_nodes(["decode", "save"])
    view = editor.view()
    title = scene.nodes["decode"].mapToScene(QPointF(40, 10))
    start = view.mapFromScene(title)
    mouse_drag(editor, start, start + QPoint(0, 80))
    moved_y = document.graph.nodes["decode"].position[1]
    assert moved_y > 40
    assert document.graph.nodes["save"].position[1] == pytest.approx(moved_y)
    document.undo_stack.undo()
    assert document.graph.nodes["decode"].position == (840.0, 0.0)
    assert document.graph.nodes["save"].position == (1400.0, 0.0)
    assert scene.nodes["save"].pos() == QPointF(1400, 0)


def test_palette_adds_a_node(editor, document, qtbot):
    editor.show_palette(QPointF(100, 700))
    palette = editor.palette
    assert palette.isVisible()
    QTest.keyClicks(palette.filter, "upscale model")
    titles = [item.text(0) for item in palette.node_items()]
    assert titles and all("pscale" in t for t in titles)
    QTest.keyClick(palette.filter, Qt.Key.Key_Return)
    added = [n for n in document.graph.nodes.values() if n.type == titles_type(titles[0])]
    assert len(added) == 1 and added[0].position == (100.0, 700.0)
    assert editor.scene().selected_ids() == [added[0].id]
    assert not palette.isVisible()


def titles_type(title: str) -> str:
    return next(s.type for s in specs().values() if s.title == title)


def test_tab_opens_the_palette(editor):
    editor.view().setFocus()
    QTest.keyClick(editor.view(), Qt.Key.Key_Tab)
    assert editor.palette.isVisible()
    editor.palette.hide()


def test_expose_from_the_row_menu(editor, document):
    form = editor.scene().nodes["sample"].form
    assert not document.is_exposed("sample", "denoise")
    menu = form.exposure_menu("denoise")
    action = next(a for a in menu.actions() if a.text() == SHOW_IN_PANEL)
    assert not action.isChecked()
    action.trigger()
    assert document.is_exposed("sample", "denoise")
    assert "●" in editor.scene().nodes["sample"].form.labels["denoise"].text()
    form.exposure_menu("denoise").actions()[0].trigger()
    assert not document.is_exposed("sample", "denoise")


def test_save_and_reopen(editor, document, tmp_path):
    document.set_param("sample", "steps", 12)
    document.move_nodes({"save": (1200.0, 40.0)})
    path = tmp_path / "mine.json"
    editor.save_workflow(str(path))
    saved = serialize.to_dict(document.graph)
    other = WorkflowDocument(serialize.load(WORKFLOWS / "inpaint.json"), specs())
    reopened = NodeEditor(other)
    reopened.open_workflow(str(path))
    assert serialize.to_dict(other.graph) == saved
    assert set(reopened.scene().nodes) == set(document.graph.nodes)
    assert reopened.scene().nodes["save"].pos() == QPointF(1200, 40)
    assert json.loads(path.read_text())["format"] == "studio-workflow"
    reopened.deleteLater()


def test_bad_workflow_file_is_reported_not_raised(editor, document, tmp_path, qtbot):
    path = tmp_path / "broken.json"
    path.write_text("{ not json", encoding="utf-8")
    before = serialize.to_dict(document.graph)
    with qtbot.waitSignal(editor.message) as said:
        editor.open_workflow(str(path))
    assert "not valid JSON" in said.args[0]
    assert editor.message_box is not None and editor.message_box.isVisible()
    assert "broken.json" in editor.message_box.text()
    editor.message_box.close()
    assert serialize.to_dict(document.graph) == before


def test_run_status_on_nodes(editor):
    editor.set_running("sample")
    editor.set_node_progress("sample", 5, 20)
    sample = editor.scene().nodes["sample"]
    assert sample.running and sample.progress == (5, 20)
    editor.set_node_error("decode", "Decode: out of memory.")
    assert editor.scene().nodes["decode"].error == "Decode: out of memory."
    assert editor.scene().nodes["decode"].error_bubble.isVisible()
    editor.clear_status()
    assert not sample.running and sample.progress is None
    assert editor.scene().nodes["decode"].error is None


def test_looks_right_with_the_inpaint_workflow(editor, document, tmp_path):
    document.replace(serialize.load(WORKFLOWS / "inpaint.json"))
    assert set(editor.scene().nodes) == set(document.graph.nodes)
    editor.fit()
    image = editor.grab().toImage()
    assert image.width() >= 1400
    # Nodes do not overlap one another as laid out in the bundled workflow.
    boxes = [i.sceneBoundingRect().adjusted(3, 3, -3, -3) for i in editor.scene().nodes.values()]
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            assert not boxes[a].intersects(boxes[b])


def test_keyboard_shortcuts(editor, document):
    view = editor.view()
    editor.scene().select_nodes(["decode"])
    view.setFocus()
    QTest.keyClick(view.viewport(), Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(view.viewport(), Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert len(document.graph.find("Decode")) == 2
    QTest.keyClick(view.viewport(), Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(document.graph.find("Decode")) == 1
    QTest.keyClick(view.viewport(), Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert len(document.graph.find("Decode")) == 2


def test_keys_typed_in_a_node_field_stay_in_the_field(editor, document):
    node = editor.scene().nodes["save"]
    node.setSelected(True)
    line = node.form.fields["prefix"].line
    editor.view().setFocus()
    line.setFocus()
    editor.scene().setFocusItem(node.proxy)
    line.setFocus()
    line.end(False)
    QTest.keyClick(line, Qt.Key.Key_Backspace)
    QTest.keyClick(line, Qt.Key.Key_Delete)
    assert "save" in document.graph.nodes
    assert document.graph.nodes["save"].params["prefix"] == "studi"


def test_wheel_zooms_and_fit_shows_everything(editor):
    view = editor.view()
    before = view.zoom()
    view.zoom_by(1.5)
    assert view.zoom() == pytest.approx(before * 1.5)
    editor.fit()
    rect = view.mapToScene(view.viewport().rect()).boundingRect()
    assert rect.contains(editor.scene().itemsBoundingRect())
    assert view.zoom() <= 1.0


def test_relinking_an_existing_link_adds_no_undo_step(editor, document):
    count = document.undo_stack.count()
    out = port(editor, "place", "image", output=True)
    inp = port(editor, "save", "image", output=False)
    assert editor.scene().connect_items(out, inp) is None
    assert document.undo_stack.count() == count


def test_middle_drag_pans(editor):
    view = editor.view()
    viewport = view.viewport()
    before = view.mapToScene(viewport.rect().center())
    start = viewport.rect().center()
    QTest.mousePress(viewport, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(viewport, start + QPoint(60, 40))
    QTest.mouseRelease(
        viewport,
        Qt.MouseButton.MiddleButton,
        Qt.KeyboardModifier.NoModifier,
        start + QPoint(60, 40),
    )
    after = view.mapToScene(viewport.rect().center())
    assert after.x() < before.x() and after.y() < before.y()


def test_right_click_on_empty_space_opens_the_palette(editor):
    from PySide6.QtGui import QContextMenuEvent
    from PySide6.QtWidgets import QApplication

    view = editor.view()
    empty = view.mapFromScene(QPointF(900, 600))
    event = QContextMenuEvent(
        QContextMenuEvent.Reason.Mouse, empty, view.viewport().mapToGlobal(empty)
    )
    QApplication.sendEvent(view.viewport(), event)
    assert editor.palette.isVisible()
    editor.palette.filter.setText("decode")
    editor.palette.choose_current()
    decode = [n for n in editor.document.graph.find("Decode") if n.id != "decode"]
    assert len(decode) == 1
    assert decode[0].position == pytest.approx((900, 600), abs=2)


def test_rubber_band_selects_nodes(editor):
    view = editor.view()
    start = view.mapFromScene(QPointF(-20, -20))
    end = view.mapFromScene(QPointF(150, 100))
    mouse_drag(editor, start, end)
    assert editor.scene().selected_ids() == ["model"]


def test_window_wide_undo_on_the_same_key_does_not_block_ours(qtbot, document):
    from PySide6.QtGui import QAction, QKeySequence
    from PySide6.QtWidgets import QMainWindow

    window = QMainWindow()
    qtbot.addWidget(window)
    other = QAction("Undo", window)
    other.setShortcut(QKeySequence.StandardKey.Undo)
    fired = []
    other.triggered.connect(lambda: fired.append(True))
    window.addAction(other)
    editor = NodeEditor(document)
    window.setCentralWidget(editor)
    window.show()
    qtbot.waitExposed(window)
    document.set_param("sample", "steps", 5)
    editor.view().setFocus()
    QTest.keyClick(editor.view(), Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert document.graph.nodes["sample"].params["steps"] == 20
    assert not fired
