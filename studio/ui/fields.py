"""One editor widget per parameter kind, built from a node spec's Param (range, choices, hints).

A field shows a value and reports the user's edits through `edited`; values it is given with
`set_value` (from the document) are shown without being reported back, so there is no loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSignalBlocker, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QWidget,
)

from studio.graph.spec import BOOL, ENUM, FLOAT, INT, MAX_SEED, PATH, SEED, TEXT, Param

_INT_LIMIT = 2**31 - 1


class Field(QObject):
    """A widget editing one parameter."""

    edited = Signal(object)

    def __init__(self, param: Param, widget: QWidget, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.param = param
        self.widget = widget
        if param.hints.get("tooltip"):
            widget.setToolTip(str(param.hints["tooltip"]))

    def set_value(self, value: Any) -> None:
        raise NotImplementedError

    def detach(self) -> None:
        """Stop listening to anything outside the field (its form is being rebuilt)."""

    def _emit(self, value: Any) -> None:
        self.edited.emit(value)


class TextField(Field):
    def __init__(self, param: Param, placeholder: str = "") -> None:
        edit = QPlainTextEdit()
        edit.setPlaceholderText(placeholder)
        edit.setTabChangesFocus(True)
        # A file dropped here goes to the window (restore its parameters), not into the text.
        edit.setAcceptDrops(False)
        edit.setFixedHeight(72)
        super().__init__(param, edit)
        edit.textChanged.connect(lambda: self._emit(edit.toPlainText()))

    def set_value(self, value: Any) -> None:
        edit: QPlainTextEdit = self.widget  # type: ignore[assignment]
        if edit.toPlainText() != (value or ""):
            with QSignalBlocker(edit):
                edit.setPlainText(value or "")


class LineField(Field):
    def __init__(self, param: Param) -> None:
        edit = QLineEdit()
        super().__init__(param, edit)
        edit.textEdited.connect(self._emit)

    def set_value(self, value: Any) -> None:
        edit: QLineEdit = self.widget  # type: ignore[assignment]
        if edit.text() != str(value or ""):
            edit.setText(str(value or ""))


class IntField(Field):
    def __init__(self, param: Param) -> None:
        spin = QSpinBox()
        spin.setRange(
            int(param.minimum if param.minimum is not None else -_INT_LIMIT),
            int(param.maximum if param.maximum is not None else _INT_LIMIT),
        )
        spin.setSingleStep(int(param.step or 1))
        spin.setKeyboardTracking(False)
        super().__init__(param, spin)
        spin.valueChanged.connect(self._emit)

    def set_value(self, value: Any) -> None:
        with QSignalBlocker(self.widget):
            self.widget.setValue(int(value or 0))  # type: ignore[attr-defined]


class FloatField(Field):
    def __init__(self, param: Param) -> None:
        spin = QDoubleSpinBox()
        spin.setRange(
            param.minimum if param.minimum is not None else -1e9,
            param.maximum if param.maximum is not None else 1e9,
        )
        step = param.step or (0.05 if (param.maximum or 10) <= 1.5 else 0.5)
        spin.setSingleStep(step)
        spin.setDecimals(2)
        spin.setKeyboardTracking(False)
        super().__init__(param, spin)
        spin.valueChanged.connect(self._emit)

    def set_value(self, value: Any) -> None:
        with QSignalBlocker(self.widget):
            self.widget.setValue(float(value or 0.0))  # type: ignore[attr-defined]


class ChoiceField(Field):
    def __init__(self, param: Param) -> None:
        combo = QComboBox()
        combo.addItems([str(c) for c in param.choices])
        super().__init__(param, combo)
        combo.activated.connect(lambda index: self._emit(param.choices[index]))

    def set_value(self, value: Any) -> None:
        combo: QComboBox = self.widget  # type: ignore[assignment]
        with QSignalBlocker(combo):
            combo.setCurrentText(str(value))


class BoolField(Field):
    def __init__(self, param: Param) -> None:
        box = QCheckBox()
        super().__init__(param, box)
        box.toggled.connect(self._emit)

    def set_value(self, value: Any) -> None:
        with QSignalBlocker(self.widget):
            self.widget.setChecked(bool(value))  # type: ignore[attr-defined]


class PathField(Field):
    def __init__(self, param: Param) -> None:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(str(param.hints.get("empty", "")))
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        row.addWidget(self.edit, 1)
        row.addWidget(browse)
        super().__init__(param, box)
        self.edit.editingFinished.connect(lambda: self._emit(self.edit.text()))
        browse.clicked.connect(self._browse)

    def _browse(self) -> None:
        start = self.edit.text() or str(Path.home())
        if self.param.hints.get("directory"):
            chosen = QFileDialog.getExistingDirectory(self.widget, self.param.title, start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self.widget, self.param.title, start)
        if chosen:
            self.edit.setText(chosen)
            self._emit(chosen)

    def set_value(self, value: Any) -> None:
        if self.edit.text() != str(value or ""):
            self.edit.setText(str(value or ""))


class SeedField(Field):
    """A seed: typed, or drawn at random for each run; "Reuse" brings back the last one used.

    The policy (random or not, the last seed) belongs to the presentation model the field is
    bound to; the field shows it and reports the user's choices to it.
    """

    def __init__(self, param: Param) -> None:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit("0")
        self.edit.setValidator(QRegularExpressionValidator(r"\d{1,20}"))
        self.random = QCheckBox("Random")
        self.random.setToolTip("Draw a new seed for every run")
        self.reuse = QToolButton()
        self.reuse.setText("↺")
        self.reuse.setObjectName("reuse-seed")
        self.reuse.setToolTip("Use the seed of the last run again (and stop drawing new ones)")
        self.reuse.setEnabled(False)
        box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        row.addWidget(self.edit, 1)
        row.addWidget(self.random)
        row.addWidget(self.reuse)
        super().__init__(param, box)
        self.rules: Any = None
        self.edit.editingFinished.connect(self._typed)
        self.random.toggled.connect(self._random_toggled)
        self.reuse.clicked.connect(self._reuse)

    def bind(self, rules: Any) -> None:
        """Show and change the seed policy of `rules` (the presentation model)."""
        self.rules = rules
        with QSignalBlocker(self.random):
            self.random.setChecked(bool(rules.random_seed))
        self.edit.setEnabled(not rules.random_seed)
        self._show_last()

    @property
    def last_seed(self) -> int | None:
        return None if self.rules is None else self.rules.last_seed

    def _show_last(self) -> None:
        seed = self.last_seed
        self.reuse.setEnabled(seed is not None)
        if seed is not None:
            self.reuse.setToolTip(f"Use seed {seed} again")

    def _random_toggled(self, on: bool) -> None:
        if self.rules is not None:
            self.rules.random_seed = on
        self.edit.setEnabled(not on)
        if not on:
            self._typed()  # the box shows the last seed drawn: that is the seed from now on

    def _typed(self) -> None:
        text = self.edit.text()
        if text:
            self._emit(min(int(text), MAX_SEED))

    def _reuse(self) -> None:
        if self.last_seed is None:
            return
        seed = self.last_seed
        self.random.setChecked(False)
        self.edit.setText(str(seed))
        self._emit(seed)

    def next_seed(self, current: int) -> int:
        """The seed for the next run (from the bound policy), shown in the box."""
        if self.rules is None:
            from studio.ui.prompt_panel import _Rules

            self.bind(_Rules(random_seed=self.random.isChecked()))
        seed = self.rules.next_seed(current)
        self.edit.setText(str(seed))  # so a drawn seed can be read (and copied) from the box
        self._show_last()
        return seed

    def set_value(self, value: Any) -> None:
        if self.edit.text() != str(value):
            self.edit.setText(str(value))


def make_field(param: Param) -> Field:
    """The editor for a parameter's kind (models get their own selector, made by the panel)."""
    kind = param.kind
    if kind == TEXT:
        return TextField(param, str(param.hints.get("placeholder", "")))
    if kind == INT:
        return IntField(param)
    if kind == FLOAT:
        return FloatField(param)
    if kind == ENUM:
        return ChoiceField(param)
    if kind == BOOL:
        return BoolField(param)
    if kind == SEED:
        return SeedField(param)
    if kind == PATH:
        return PathField(param)
    return LineField(param)
