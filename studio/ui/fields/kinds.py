"""The field of each parameter kind but seeds: numbers, choices, lines, paths, texts, switches."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QToolButton,
    QWidget,
)

from studio.graph.spec import Param
from studio.ui.fields.base import FIELD_HEIGHT, INT_LIMIT, Field, row

TEXT_HEIGHT = 72
COMPACT_TEXT_HEIGHT = 58

# Named file filters used by node specs' "file_filter" hint.
FILE_FILTERS = {
    "image": "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff);;All files (*)",
    "checkpoint": "Checkpoints (*.safetensors *.ckpt *.pt *.pth *.bin);;All files (*)",
    "upscaler": "Upscale models (*.safetensors *.pth *.pt *.ckpt);;All files (*)",
}


class IntField(Field):
    def __init__(self, param: Param, compact: bool = False) -> None:
        self.spin = QSpinBox()
        super().__init__(param, self.spin, compact)
        low = -INT_LIMIT if param.minimum is None else max(-INT_LIMIT, int(param.minimum))
        high = INT_LIMIT if param.maximum is None else min(INT_LIMIT, int(param.maximum))
        self.spin.setRange(low, high)
        self.spin.setSingleStep(int(param.step or 1))
        if "zero" in param.hints and low == 0:
            # 0 means "derive it"; say so instead of showing a bare zero.
            self.spin.setSpecialValueText(str(param.hints["zero"]))
        # One undo step per committed number, not one per typed digit.
        self.spin.setKeyboardTracking(False)
        self._sized(self.spin)
        self.spin.valueChanged.connect(self._emit)

    def value(self) -> int:
        return self.spin.value()

    def set_value(self, value: Any) -> None:
        try:
            number = int(value or 0)
        except (TypeError, ValueError):
            return
        if number != self.spin.value():
            with QSignalBlocker(self.spin):
                self.spin.setValue(number)


class FloatField(Field):
    def __init__(self, param: Param, compact: bool = False) -> None:
        self.spin = QDoubleSpinBox()
        super().__init__(param, self.spin, compact)
        step = float(param.step or (0.05 if (param.maximum or 10) <= 1.5 else 0.5))
        self.spin.setDecimals(max(2, len(f"{step:g}".partition(".")[2])))
        self.spin.setRange(
            -1e9 if param.minimum is None else float(param.minimum),
            1e9 if param.maximum is None else float(param.maximum),
        )
        self.spin.setSingleStep(step)
        self.spin.setKeyboardTracking(False)
        self._sized(self.spin)
        self.spin.valueChanged.connect(lambda number: self._emit(float(number)))

    def value(self) -> float:
        return float(self.spin.value())

    def set_value(self, value: Any) -> None:
        try:
            number = float(value or 0.0)
        except (TypeError, ValueError):
            return
        if abs(number - self.spin.value()) > 10 ** -(self.spin.decimals() + 1):
            with QSignalBlocker(self.spin):
                self.spin.setValue(number)


class ChoiceField(Field):
    def __init__(self, param: Param, compact: bool = False) -> None:
        self.combo = QComboBox()
        super().__init__(param, self.combo, compact)
        self.combo.addItems([str(choice) for choice in param.choices])
        if compact:
            # Sized by a few characters, not the longest choice, so the label keeps its room.
            self.combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            self.combo.setMinimumContentsLength(6)
        self._sized(self.combo)
        self.combo.activated.connect(lambda index: self._emit(param.choices[index]))

    def value(self) -> Any:
        index = self.combo.currentIndex()
        return self.param.choices[index] if index >= 0 else None

    def set_value(self, value: Any) -> None:
        index = self.param.choices.index(value) if value in self.param.choices else -1
        if index != self.combo.currentIndex():
            with QSignalBlocker(self.combo):
                self.combo.setCurrentIndex(index)


class LineField(Field):
    """One line of text, reported as it is typed (the document merges the keystrokes)."""

    live = True  # report every keystroke, not only the finished line

    def __init__(self, param: Param, compact: bool = False) -> None:
        self.line = QLineEdit()
        self.line.setPlaceholderText(str(param.hints.get("empty", "")))
        super().__init__(param, self._box(param, compact), compact)
        self._sized(self.line)
        if self.live:
            self.line.textEdited.connect(self._emit)
        else:
            self.line.editingFinished.connect(lambda: self._emit(self.line.text()))

    def _box(self, param: Param, compact: bool) -> QWidget:
        return self.line

    def value(self) -> str:
        return self.line.text()

    def set_value(self, value: Any) -> None:
        text = "" if value is None else str(value)
        if self.line.text() != text:
            self.line.setText(text)


class PathField(LineField):
    """A file or folder: typed (reported when the typing ends) or chosen with "…"."""

    live = False  # half a path names nothing

    def _box(self, param: Param, compact: bool) -> QWidget:
        if not self.line.placeholderText():
            self.line.setPlaceholderText("directory…" if param.hints.get("directory") else "file…")
        self.browse = QToolButton()
        self.browse.setText("…")
        self.browse.setToolTip(f"Choose {param.title.lower()}")
        if compact:
            self.browse.setFixedSize(FIELD_HEIGHT, FIELD_HEIGHT)
        else:
            self.browse.setFixedWidth(28)
        return row(compact, self.line, self.browse)

    def __init__(self, param: Param, compact: bool = False) -> None:
        super().__init__(param, compact)
        self.browse.clicked.connect(self._choose)

    def _choose(self) -> None:
        start = self.line.text()
        # Inside the node editor the field sits in a graphics scene, not on a window.
        parent = QApplication.activeWindow() or self.widget
        if self.param.hints.get("directory"):
            path = QFileDialog.getExistingDirectory(parent, self.param.title, start)
        else:
            wanted = str(self.param.hints.get("file_filter", ""))
            file_filter = FILE_FILTERS.get(wanted, wanted if "*" in wanted else "All files (*)")
            path, _ = QFileDialog.getOpenFileName(parent, self.param.title, start, file_filter)
        if path:
            self.line.setText(path)
            self._emit(path)


class TextField(Field):
    """Several lines (prompts); a value shown while typing keeps the cursor where it was."""

    def __init__(self, param: Param, compact: bool = False, placeholder: str = "") -> None:
        self.text = QPlainTextEdit()
        super().__init__(param, self.text, compact)
        self.text.setPlaceholderText(
            placeholder or str(param.hints.get("placeholder", "")) or param.title
        )
        self.text.setTabChangesFocus(True)
        # A file dropped here goes to the window (restore its parameters), not into the text.
        self.text.setAcceptDrops(False)
        self.text.setFixedHeight(COMPACT_TEXT_HEIGHT if compact else TEXT_HEIGHT)
        self.text.textChanged.connect(lambda: self._emit(self.text.toPlainText()))

    def value(self) -> str:
        return self.text.toPlainText()

    def set_value(self, value: Any) -> None:
        text = "" if value is None else str(value)
        if self.text.toPlainText() == text:
            return
        position = min(self.text.textCursor().position(), len(text))
        with QSignalBlocker(self.text):
            self.text.setPlainText(text)
            cursor = self.text.textCursor()
            cursor.setPosition(position)
            self.text.setTextCursor(cursor)


class BoolField(Field):
    def __init__(self, param: Param, compact: bool = False) -> None:
        self.check = QCheckBox()
        super().__init__(param, self.check, compact)
        self._sized(self.check)
        self.check.toggled.connect(self._emit)

    def value(self) -> bool:
        return self.check.isChecked()

    def set_value(self, value: Any) -> None:
        if bool(value) != self.check.isChecked():
            with QSignalBlocker(self.check):
                self.check.setChecked(bool(value))
