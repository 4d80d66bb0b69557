"""The Layers panel: the canvas's layers, top first, with show/hide, opacity, rename, reorder,
delete and merge down (each one undo step on the canvas), and which layer a job starts from.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, QSize, Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.errors import StudioError
from studio.ui.canvas import Canvas

THUMB = 40


class LayersPanel(QWidget):
    def __init__(self, canvas: Canvas, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.list = QListWidget()
        self.list.setObjectName("layers")
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setEditTriggers(QListWidget.EditTrigger.DoubleClicked)
        self.list.itemChanged.connect(self._item_changed)
        self.list.currentRowChanged.connect(lambda _row: self._show_opacity())

        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Opacity of the selected layer")
        self.opacity.sliderReleased.connect(self._opacity_chosen)
        self.opacity_label = QLabel("100 %")
        self.opacity_label.setMinimumWidth(40)
        self.opacity.valueChanged.connect(lambda v: self.opacity_label.setText(f"{v} %"))

        self.source = QComboBox()
        self.source.setObjectName("layer-source")
        self.source.setToolTip("What generating and upscaling start from")
        self.source.activated.connect(self._source_chosen)

        buttons = QHBoxLayout()
        buttons.setSpacing(2)
        self.buttons: dict[str, QToolButton] = {}
        for name, text, tip in (
            ("up", "▲", "Move the layer up"),
            ("down", "▼", "Move the layer down"),
            ("merge", "Merge ↓", "Merge the layer into the one below"),
            ("delete", "Delete", "Delete the layer"),
        ):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.setObjectName(f"layer-{name}")
            button.clicked.connect(lambda _=False, n=name: self._button(n))
            buttons.addWidget(button)
            self.buttons[name] = button
        buttons.addStretch(1)

        opacity_row = QHBoxLayout()
        opacity_row.addWidget(QLabel("Opacity"))
        opacity_row.addWidget(self.opacity, 1)
        opacity_row.addWidget(self.opacity_label)
        source_row = QHBoxLayout()
        source_row.addWidget(QLabel("Generate from"))
        source_row.addWidget(self.source, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addLayout(opacity_row)
        layout.addLayout(buttons)
        layout.addLayout(source_row)
        canvas.imageChanged.connect(self.refresh)
        self.refresh()

    # -- rows are layers top first; the canvas counts from the bottom -------------------------

    def _index(self, row: int) -> int:
        return len(self.canvas.layer_list()) - 1 - row

    def selected(self) -> int | None:
        """The canvas index (0 = bottom) of the selected layer, or None."""
        row = self.list.currentRow()
        return None if row < 0 else self._index(row)

    def select(self, index: int) -> None:
        self.list.setCurrentRow(self._index(index))

    def refresh(self) -> None:
        layers = self.canvas.layer_list()
        keep = self.selected()
        with QSignalBlocker(self.list):
            self.list.clear()
            for layer in reversed(layers):
                item = QListWidgetItem(layer.name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
                thumb = QPixmap.fromImage(layer.image).scaled(
                    THUMB,
                    THUMB,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
                item.setIcon(QIcon(thumb))
                item.setToolTip(
                    f"{layer.name}: {layer.rect.width()}x{layer.rect.height()} at "
                    f"({layer.rect.x()}, {layer.rect.y()}); double-click to rename"
                )
                self.list.addItem(item)
            if layers:
                index = keep if keep is not None and keep < len(layers) else len(layers) - 1
                self.list.setCurrentRow(self._index(index))
        with QSignalBlocker(self.source):
            self.source.clear()
            self.source.addItem("Visible layers", None)
            for index in range(len(layers) - 1, -1, -1):
                self.source.addItem(f"Layer: {layers[index].name}", index)
            chosen = self.canvas.source_layer
            found = self.source.findData(chosen) if chosen is not None else 0
            self.source.setCurrentIndex(max(0, found))
            if chosen is not None and found < 0:
                self.canvas.source_layer = None
        self._show_opacity()
        for button in self.buttons.values():
            button.setEnabled(bool(layers))

    def _show_opacity(self) -> None:
        index = self.selected()
        layers = self.canvas.layer_list()
        value = round(layers[index].opacity * 100) if index is not None and index < len(layers) else 100
        with QSignalBlocker(self.opacity):
            self.opacity.setValue(value)
        self.opacity_label.setText(f"{value} %")

    # -- edits --------------------------------------------------------------------------------

    def _item_changed(self, item: QListWidgetItem) -> None:
        index = self._index(self.list.row(item))
        layer = self.canvas.layer_list()[index]
        visible = item.checkState() == Qt.CheckState.Checked
        edits = self.canvas.layer_edits
        if visible != layer.visible:
            edits.set_visible(index, visible)
        elif item.text().strip() and item.text() != layer.name:
            edits.rename(index, item.text())
        else:
            self.refresh()

    def _opacity_chosen(self) -> None:
        index = self.selected()
        if index is not None:
            self.canvas.layer_edits.set_opacity(index, self.opacity.value() / 100.0)

    def _source_chosen(self, position: int) -> None:
        self.canvas.source_layer = self.source.itemData(position)

    def _button(self, name: str) -> None:
        index = self.selected()
        if index is None:
            return
        edits = self.canvas.layer_edits
        try:
            if name == "up":
                edits.move(index, index + 1)
                self.select(min(index + 1, len(self.canvas.layer_list()) - 1))
            elif name == "down":
                edits.move(index, index - 1)
                self.select(max(index - 1, 0))
            elif name == "merge":
                edits.merge_down(index)
            elif name == "delete":
                edits.delete(index)
        except StudioError as error:
            window = self.window()
            if hasattr(window, "show_message"):
                window.show_message(str(error))
