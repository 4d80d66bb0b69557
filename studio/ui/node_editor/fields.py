"""One compact editor widget per parameter kind, as used inside a node.

Each field shows a value with `show_value` (never echoing an edit back) and reports what
the user typed with `edited`. Fields know nothing about the document; the form does.
"""

from __future__ import annotations

import random
from typing import Any

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QToolButton,
    QWidget,
)

from studio.graph import spec as graph_spec
from studio.graph.spec import Param

_INT_LIMIT = 2**31 - 1  # QSpinBox is 32-bit; seeds use their own field
FIELD_HEIGHT = 22
TEXT_HEIGHT = 58

# Named file filters used by node specs' "file_filter" hint.
_FILE_FILTERS = {
    "image": "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff);;All files (*)",
    "checkpoint": "Checkpoints (*.safetensors *.ckpt *.pt *.pth *.bin);;All files (*)",
    "upscaler": "Upscale models (*.safetensors *.pth *.pt *.ckpt);;All files (*)",
}


class ParamField(QWidget):
    """Base of the per-kind editors: `edited(value)` when the user changes the value."""

    edited = Signal(object)

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.param = param
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)

    def show_value(self, value: Any) -> None:
        raise NotImplementedError

    def value(self) -> Any:
        raise NotImplementedError


class IntField(ParamField):
    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.spin = QSpinBox()
        low = -_INT_LIMIT if param.minimum is None else max(-_INT_LIMIT, int(param.minimum))
        high = _INT_LIMIT if param.maximum is None else min(_INT_LIMIT, int(param.maximum))
        self.spin.setRange(low, high)
        self.spin.setSingleStep(int(param.step or 1))
        if "zero" in param.hints and low == 0:
            # 0 means "derive it"; say so instead of showing a bare zero.
            self.spin.setSpecialValueText(str(param.hints["zero"]))
        # One undo step per committed number, not one per typed digit.
        self.spin.setKeyboardTracking(False)
        self.spin.setFixedHeight(FIELD_HEIGHT)
        self.spin.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.spin.valueChanged.connect(self.edited.emit)
        self._layout.addWidget(self.spin)

    def show_value(self, value: Any) -> None:
        try:
            number = int(value)
        except (TypeError, ValueError):
            return
        if number != self.spin.value():
            self.spin.blockSignals(True)
            self.spin.setValue(number)
            self.spin.blockSignals(False)

    def value(self) -> int:
        return self.spin.value()


class FloatField(ParamField):
    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.spin = QDoubleSpinBox()
        step = float(param.step or 0.1)
        decimals = max(2, len(f"{step:g}".partition(".")[2]))
        self.spin.setDecimals(decimals)
        self.spin.setRange(
            -1e9 if param.minimum is None else float(param.minimum),
            1e9 if param.maximum is None else float(param.maximum),
        )
        self.spin.setSingleStep(step)
        self.spin.setKeyboardTracking(False)
        self.spin.setFixedHeight(FIELD_HEIGHT)
        self.spin.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.spin.valueChanged.connect(lambda v: self.edited.emit(float(v)))
        self._layout.addWidget(self.spin)

    def show_value(self, value: Any) -> None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return
        if abs(number - self.spin.value()) > 10 ** -(self.spin.decimals() + 1):
            self.spin.blockSignals(True)
            self.spin.setValue(number)
            self.spin.blockSignals(False)

    def value(self) -> float:
        return float(self.spin.value())


class SeedField(ParamField):
    """Seeds go up to 2**64 - 1, past what QSpinBox holds, so they are typed digits."""

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.line = QLineEdit()
        self.line.setValidator(QRegularExpressionValidator(QRegularExpression(r"[0-9]{0,20}")))
        self.line.setFixedHeight(FIELD_HEIGHT)
        self.line.editingFinished.connect(self._commit)
        self._layout.addWidget(self.line, 1)
        self.dice = QToolButton()
        self.dice.setText("⚄")
        self.dice.setToolTip("A new random seed")
        self.dice.setFixedSize(FIELD_HEIGHT, FIELD_HEIGHT)
        self.dice.clicked.connect(self._randomize)
        self._layout.addWidget(self.dice)

    def _commit(self) -> None:
        text = self.line.text().strip()
        value = min(int(text), graph_spec.MAX_SEED) if text else 0
        if str(value) != text:
            self.line.setText(str(value))
        self.edited.emit(value)

    def _randomize(self) -> None:
        value = random.randint(0, graph_spec.MAX_SEED)
        self.line.setText(str(value))
        self.edited.emit(value)

    def show_value(self, value: Any) -> None:
        if self.line.text() != str(value):
            self.line.setText(str(value))

    def value(self) -> int:
        text = self.line.text().strip()
        return int(text) if text else 0


class EnumField(ParamField):
    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.combo = QComboBox()
        self.combo.addItems([str(c) for c in param.choices])
        # Sized by a few characters, not the longest choice, so the label keeps its room.
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(6)
        self.combo.setFixedHeight(FIELD_HEIGHT)
        self.combo.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.combo.activated.connect(lambda i: self.edited.emit(self.param.choices[i]))
        self._layout.addWidget(self.combo)

    def show_value(self, value: Any) -> None:
        index = self.param.choices.index(value) if value in self.param.choices else -1
        if index != self.combo.currentIndex():
            self.combo.blockSignals(True)
            self.combo.setCurrentIndex(index)
            self.combo.blockSignals(False)

    def value(self) -> Any:
        index = self.combo.currentIndex()
        return self.param.choices[index] if index >= 0 else None


class StringField(ParamField):
    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.line = QLineEdit()
        self.line.setFixedHeight(FIELD_HEIGHT)
        if param.hints.get("empty"):
            self.line.setPlaceholderText(str(param.hints["empty"]))
        # Live, so the prompt panel follows as the user types; the document merges keystrokes.
        self.line.textEdited.connect(self.edited.emit)
        self._layout.addWidget(self.line, 1)

    def show_value(self, value: Any) -> None:
        text = "" if value is None else str(value)
        if self.line.text() != text:
            self.line.setText(text)

    def value(self) -> str:
        return self.line.text()


class PathField(StringField):
    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        if not self.line.placeholderText():
            self.line.setPlaceholderText("directory…" if param.hints.get("directory") else "file…")
        self.browse = QToolButton()
        self.browse.setText("…")
        self.browse.setToolTip(f"Choose {param.title.lower()}")
        self.browse.setFixedSize(FIELD_HEIGHT, FIELD_HEIGHT)
        self.browse.clicked.connect(self._choose)
        self._layout.addWidget(self.browse)

    def _choose(self) -> None:
        start = self.line.text()
        # This field lives inside the graph view, not in a window a dialog could sit on.
        parent = QApplication.activeWindow()
        if self.param.hints.get("directory"):
            path = QFileDialog.getExistingDirectory(parent, self.param.title, start)
        else:
            wanted = str(self.param.hints.get("file_filter", ""))
            file_filter = _FILE_FILTERS.get(wanted, wanted if "*" in wanted else "All files (*)")
            path, _ = QFileDialog.getOpenFileName(parent, self.param.title, start, file_filter)
        if path:
            self.line.setText(path)
            self.edited.emit(path)


class TextField(ParamField):
    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.text = QPlainTextEdit()
        self.text.setFixedHeight(TEXT_HEIGHT)
        self.text.setTabChangesFocus(True)
        self.text.setPlaceholderText(param.title)
        self.text.textChanged.connect(lambda: self.edited.emit(self.text.toPlainText()))
        self._layout.addWidget(self.text, 1)

    def show_value(self, value: Any) -> None:
        text = "" if value is None else str(value)
        if self.text.toPlainText() == text:
            return
        cursor = self.text.textCursor()
        position = min(cursor.position(), len(text))
        self.text.blockSignals(True)
        self.text.setPlainText(text)
        cursor = self.text.textCursor()
        cursor.setPosition(position)
        self.text.setTextCursor(cursor)
        self.text.blockSignals(False)

    def value(self) -> str:
        return self.text.toPlainText()


class BoolField(ParamField):
    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.check = QCheckBox()
        self.check.setFixedHeight(FIELD_HEIGHT)
        self.check.toggled.connect(self.edited.emit)
        self._layout.addWidget(self.check)

    def show_value(self, value: Any) -> None:
        if bool(value) != self.check.isChecked():
            self.check.blockSignals(True)
            self.check.setChecked(bool(value))
            self.check.blockSignals(False)

    def value(self) -> bool:
        return self.check.isChecked()


_FIELDS: dict[str, type[ParamField]] = {
    graph_spec.INT: IntField,
    graph_spec.FLOAT: FloatField,
    graph_spec.SEED: SeedField,
    graph_spec.ENUM: EnumField,
    graph_spec.STRING: StringField,
    graph_spec.PATH: PathField,
    graph_spec.TEXT: TextField,
    graph_spec.BOOL: BoolField,
}


def make_field(param: Param, parent: QWidget | None = None) -> ParamField:
    """The editor for a parameter's kind (a one-line text field for unknown kinds)."""
    return _FIELDS.get(param.kind, StringField)(param, parent)
