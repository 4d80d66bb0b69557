"""What every parameter field is: a widget, the value it shows, and the user's edits.

A field reports what the user changed with `edited(value)`; a value it is given with
`set_value` (from the document) is shown without being reported back, so there is no loop.
The field object belongs to its widget and goes with it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QSizePolicy, QWidget

from studio.graph.spec import Param

FIELD_HEIGHT = 22  # a compact field's height, as inside a node of the node editor
INT_LIMIT = 2**31 - 1  # QSpinBox is 32-bit; seeds have their own field


class Field(QObject):
    """A widget editing one parameter. `compact`: sized to sit inside a node (a proxy widget)."""

    edited = Signal(object)

    def __init__(self, param: Param, widget: QWidget, compact: bool = False) -> None:
        super().__init__(widget)
        self.param = param
        self.widget = widget
        self.compact = compact
        widget.setToolTip(describe(param))

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError

    def detach(self) -> None:
        """Stop listening to anything outside the field (its form is being rebuilt)."""

    def _emit(self, value: Any) -> None:
        self.edited.emit(value)

    def _sized(self, widget: QWidget) -> QWidget:
        """A compact field's part: one row high, and a mouse wheel over it scrolls the view."""
        if self.compact:
            widget.setFixedHeight(FIELD_HEIGHT)
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        return widget


def row(compact: bool, *widgets: QWidget) -> QWidget:
    """A box holding `widgets` side by side, the first one stretching; one row high."""
    box = QWidget()
    box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    if compact:
        layout.setSpacing(2)
    for index, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if index == 0 else 0)
    return box


def describe(param: Param) -> str:
    """The tooltip of a parameter: its title, range and what its hints say."""
    parts = [param.title]
    if param.minimum is not None or param.maximum is not None:
        low = "" if param.minimum is None else f"{param.minimum:g}"
        high = "" if param.maximum is None else f"{param.maximum:g}"
        parts.append(f"range {low}…{high}")
    hints = param.hints
    sayings = {"tooltip": "{}", "note": "{}", "empty": "empty means {}", "zero": "0 means {}"}
    for key, saying in sayings.items():
        if hints.get(key):
            parts.append(saying.format(hints[key]))
    return " — ".join(parts)
