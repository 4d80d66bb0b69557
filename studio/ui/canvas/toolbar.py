"""The row of canvas controls above the view, and the bar that appears while results wait."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QToolBar,
    QToolButton,
    QWidget,
)

MAX_BRUSH_SIZE = 2000  # image pixels: a quarter of a large photo's width
MAX_SLIDER_SIZE = 500  # the slider covers the common sizes finely; the spin box goes further


def _button(text: str, tip: str, parent: QWidget) -> QToolButton:
    button = QToolButton(parent)
    button.setText(text)
    button.setToolTip(tip)
    button.setAutoRaise(True)
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return button


class CanvasToolbar(QToolBar):
    """Tools, brush size and hardness, mask actions and zoom, in one row that overflows into »».

    The buttons are the canvas's own QActions (so their shortcuts work wherever focus is in
    the canvas); the size and hardness controls emit sizeChosen(int) and hardnessChosen(float).
    """

    sizeChosen = Signal(int)
    hardnessChosen = Signal(float)
    operationChosen = Signal(str)

    def __init__(self, actions: dict[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__("Canvas", parent)
        self.setMovable(False)
        self.setFloatable(False)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for name in ("brush", "eraser", "rectangle", "ellipse", "lasso", "region", "pan"):
            self.addAction(actions[name])
        self.operation = QComboBox(self)
        self.operation.addItems(["Replace", "Add", "Subtract"])
        self.operation.setToolTip(
            "What a rectangle, ellipse or lasso selection does to the mask "
            "(Shift adds, Alt subtracts, whatever is chosen here)"
        )
        self.operation.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.operation.activated.connect(
            lambda index: self.operationChosen.emit(("replace", "add", "subtract")[index])
        )
        self.addWidget(self.operation)
        self.addSeparator()

        self.addWidget(QLabel(" Size ", self))
        self.size_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.size_slider.setRange(1, MAX_SLIDER_SIZE)
        self.size_slider.setFixedWidth(100)
        self.size_slider.setToolTip("Brush size in image pixels ([ and ])")
        self.size_spin = QSpinBox(self)
        self.size_spin.setRange(1, MAX_BRUSH_SIZE)
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip(self.size_slider.toolTip())
        self.size_spin.setKeyboardTracking(False)
        self.size_slider.valueChanged.connect(self._size_picked)
        self.size_spin.valueChanged.connect(self._size_picked)
        self.addWidget(self.size_slider)
        self.addWidget(self.size_spin)

        self.addWidget(QLabel("  Hardness ", self))
        self.hardness_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.hardness_slider.setRange(0, 100)
        self.hardness_slider.setFixedWidth(70)
        self.hardness_slider.setToolTip("Edge of the brush: 0 % soft, 100 % hard")
        self.hardness_label = QLabel(self)
        self.hardness_label.setMinimumWidth(40)
        self.hardness_slider.valueChanged.connect(self._hardness_picked)
        self.addWidget(self.hardness_slider)
        self.addWidget(self.hardness_label)
        self.addSeparator()

        self.addAction(actions["clear_mask"])
        self.addAction(actions["invert_mask"])
        self.addAction(actions["grow_mask"])
        self.addAction(actions["shrink_mask"])
        self.addSeparator()
        self.addAction(actions["fit_region"])
        self.addAction(actions["whole_region"])
        spacer = QWidget(self)
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.addWidget(spacer)
        self.addAction(actions["fit"])
        self.addAction(actions["actual_size"])
        self.zoom_label = QLabel(self)
        self.zoom_label.setMinimumWidth(90)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.zoom_label.setToolTip("Zoom: the mouse wheel zooms around the pointer")
        self.addWidget(self.zoom_label)
        for button in self.findChildren(QToolButton):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    def show_size(self, size: int) -> None:
        for widget in (self.size_slider, self.size_spin):
            widget.blockSignals(True)
        self.size_slider.setValue(min(size, MAX_SLIDER_SIZE))
        self.size_spin.setValue(size)
        for widget in (self.size_slider, self.size_spin):
            widget.blockSignals(False)

    def show_hardness(self, hardness: float) -> None:
        self.hardness_slider.blockSignals(True)
        self.hardness_slider.setValue(round(hardness * 100))
        self.hardness_slider.blockSignals(False)
        self.hardness_label.setText(f"{round(hardness * 100)} %")

    def show_zoom(self, zoom: float) -> None:
        self.zoom_label.setText(
            f"Zoom {zoom * 100:.0f} % " if zoom >= 0.1 else f"Zoom {zoom * 100:.1f} % "
        )

    def _size_picked(self, value: int) -> None:
        self.show_size(value)
        self.sizeChosen.emit(value)

    def _hardness_picked(self, value: int) -> None:
        self.hardness_label.setText(f"{value} %")
        self.hardnessChosen.emit(value / 100.0)


class StagingBar(QFrame):
    """‹ 1/4 › Accept Discard: shown only while generated results wait for a decision."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("stagingBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # Dark on the dark view whatever the window's theme, like a HUD over the picture.
        self.setStyleSheet(
            "#stagingBar { background: rgba(24, 24, 27, 225); border: 1px solid rgba(255, 255, 255, 40);"
            " border-radius: 6px; } #stagingBar QLabel { color: #e6e6e6; }"
            " #stagingBar QToolButton { color: #e6e6e6; font-size: 15px; padding: 0 6px; }"
        )
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 3, 8, 3)
        row.setSpacing(6)
        row.addWidget(QLabel("Result", self))
        self.previous_button = _button("‹", "Previous result (Left)", self)
        self.counter = QLabel(self)
        self.counter.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.counter.setMinimumWidth(40)
        self.next_button = _button("›", "Next result (Right)", self)
        self.accept_button = QPushButton("Accept", self)
        self.accept_button.setToolTip("Keep this result as a new layer (Enter)")
        self.discard_button = QPushButton("Discard", self)
        self.discard_button.setToolTip("Throw the results away (Backspace)")
        for button in (self.accept_button, self.discard_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for widget in (
            self.previous_button,
            self.counter,
            self.next_button,
            self.accept_button,
            self.discard_button,
        ):
            row.addWidget(widget)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def show_position(self, index: int, count: int) -> None:
        self.counter.setText(f"{index + 1}/{count}")
        for button in (self.previous_button, self.next_button):
            button.setEnabled(count > 1)
