"""The prompt panel and the node editor edit parameters with fields from one factory: the same
class for a kind in both places, and a value typed in one shows in the other."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtTest import QTest  # noqa: E402

from studio.graph import serialize  # noqa: E402
from studio.graph.spec import BOOL, ENUM, FLOAT, INT, PATH, SEED, STRING, TEXT  # noqa: E402
from studio.ui import fields  # noqa: E402
from studio.ui.models import ModelField  # noqa: E402

WORKFLOWS = sorted((Path(__file__).resolve().parent.parent / "resources" / "workflows").glob("*.json"))


def open_with_everything_in_the_panel(window, path: Path) -> list[tuple[str, object]]:
    """Open a workflow and show every parameter of every node in the panel too."""
    document = window.document
    document.replace(serialize.load(path))
    params = []
    for node_id in list(document.graph.nodes):
        for param in document.spec(node_id).params:
            if not document.is_exposed(node_id, param.name):
                document.set_exposed(node_id, param.name, True, param.title)
            params.append((node_id, param))
    return params


def node_field(window, node_id: str, name: str) -> fields.Field:
    return window.node_editor.scene().nodes[node_id].form.fields[name]


def is_checkpoint(param) -> bool:
    return param.kind == PATH and param.hints.get("file_filter") == "checkpoint"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_the_panel_and_the_node_editor_use_one_field_class_per_kind(qtbot, window, path):
    kinds = set()
    for node_id, param in open_with_everything_in_the_panel(window, path):
        in_panel = window.panel.field(node_id, param.name)
        in_node = node_field(window, node_id, param.name)
        assert isinstance(in_panel, fields.Field) and isinstance(in_node, fields.Field)
        assert in_node.compact and not in_panel.compact
        if is_checkpoint(param):
            # The panel's factory call adds the model list: a selector of the known models.
            assert isinstance(in_panel, ModelField) and type(in_node) is fields.PathField
        else:
            assert type(in_panel) is type(in_node), (node_id, param.name)
            assert type(in_node) is type(fields.make_field(param)), (node_id, param.name)
        kinds.add(param.kind)
    if path.stem == "txt2img":
        assert kinds >= {INT, FLOAT, ENUM, TEXT, SEED, PATH, STRING, BOOL}


def type_into(field: fields.Field, value) -> None:
    """Edit a field as a user does, through its widgets."""
    if isinstance(field, (fields.IntField, fields.FloatField)):
        field.spin.setValue(value)
    elif isinstance(field, fields.ChoiceField):
        field.combo.setCurrentIndex(field.param.choices.index(value))
        field.combo.activated.emit(field.combo.currentIndex())
    elif isinstance(field, fields.BoolField):
        field.check.click()
    elif isinstance(field, fields.TextField):
        field.text.clear()
        QTest.keyClicks(field.text, value)
    elif isinstance(field, fields.PathField | fields.SeedField):
        field.line.setText(str(value))
        field.line.editingFinished.emit()
    elif isinstance(field, fields.LineField):
        field.line.clear()
        QTest.keyClicks(field.line, value)
    else:
        raise AssertionError(f"cannot type into {type(field).__name__}")


def another_value(param, current, turn: int):
    """A valid value of `param` other than `current` (a different one on each turn)."""
    kind = param.kind
    if kind == INT:
        low = int(param.minimum or 0)
        return low + 8 * (turn + 1) if param.maximum is None else min(int(param.maximum), low + turn + 1)
    if kind == FLOAT:
        return round(float(param.minimum or 0) + 0.25 * (turn + 1), 2)
    if kind == ENUM:
        return [c for c in param.choices if c != current][turn % (len(param.choices) - 1)]
    if kind == BOOL:
        return not current
    if kind == SEED:
        return 2**64 - 1 - turn
    if kind == PATH:
        return f"/tmp/studio-test-{turn}"
    return f"typed {turn}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_a_value_typed_in_one_place_shows_in_the_other(qtbot, window, path):
    document = window.document
    tried = set()
    for node_id, param in open_with_everything_in_the_panel(window, path):
        if is_checkpoint(param) or param.kind in tried:
            continue  # the model selector is tested with the window; one parameter a kind
        tried.add(param.kind)
        for turn, (source, target) in enumerate(
            [
                (window.panel.field(node_id, param.name), node_field(window, node_id, param.name)),
                (node_field(window, node_id, param.name), window.panel.field(node_id, param.name)),
            ]
        ):
            value = another_value(param, document.param_value(node_id, param.name), turn)
            type_into(source, value)
            assert document.param_value(node_id, param.name) == value, (node_id, param.name)
            assert target.value() == value, (node_id, param.name)
            assert source.value() == value, (node_id, param.name)
    if path.stem == "txt2img":
        assert tried >= {INT, FLOAT, ENUM, TEXT, SEED, PATH, STRING, BOOL}


def test_fields_go_with_their_widgets_and_stop_listening(qtbot, window):
    """After mode switches and a model-folder change, no field of an old form is called."""
    import shiboken6

    old_panel = window.panel.field("model", "path")
    for mode in ("img2img", "inpaint", "upscale", "txt2img"):
        window.switch_mode(mode)
    with qtbot.captureExceptions() as exceptions:
        window.models.changed.emit()  # what a finished scan of the model folders does
        qtbot.wait(20)
        new = window.panel.field("model", "path")
        type_into(node_field(window, "sample", "steps"), 9)
    assert not exceptions
    assert not shiboken6.isValid(old_panel)  # it went with its row
    assert new.value() == window.document.param_value("model", "path")
    assert window.panel.field("sample", "steps").value() == 9
