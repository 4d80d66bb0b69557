"""Window actions on the picture: expand the canvas (outpainting), save and open layered
OpenRaster files, and the keyboard shortcuts dialog."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QMenu,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from studio.errors import StudioError

if TYPE_CHECKING:
    from studio.ui.main_window import MainWindow

ORA_FILTER = "OpenRaster (*.ora)"
SIDES = ("left", "top", "right", "bottom")


class ExpandDialog(QDialog):
    """How many pixels to add on each side of the canvas."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Expand canvas")
        form = QFormLayout()
        self.spins: dict[str, QSpinBox] = {}
        for side in SIDES:
            spin = QSpinBox()
            spin.setRange(0, 8192)
            spin.setSingleStep(64)
            spin.setSuffix(" px")
            spin.setObjectName(f"expand-{side}")
            form.addRow(side.capitalize(), spin)
            self.spins[side] = spin
        self.spins["right"].setValue(128)
        note = QLabel(
            "The new area is filled from the picture's edge and becomes the mask: "
            "generate in Inpaint mode to paint it."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def sides(self) -> tuple[int, int, int, int]:
        return tuple(self.spins[side].value() for side in SIDES)  # type: ignore[return-value]


def expand_canvas(window: MainWindow, sides: tuple[int, int, int, int] | None = None) -> bool:
    """Grow the canvas (asking how much when `sides` is None) and switch to inpainting."""
    if not window.canvas.has_image():
        window.show_message("Open or generate a picture before expanding the canvas.")
        return False
    if sides is None:
        dialog = ExpandDialog(window)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return False
        sides = dialog.sides()
    try:
        window.canvas.expand_canvas(*sides)
    except StudioError as error:
        window.show_message(str(error))
        return False
    if window.mode != "inpaint":
        window.switch_mode("inpaint")
    width, height = window.canvas.image_size()
    window.statusBar().showMessage(
        f"Canvas expanded to {width}x{height}: the new area is masked, press Generate.", 8000
    )
    return True


def save_layered(window: MainWindow, path: str | None = None) -> Path | None:
    """Save the canvas with its layers as OpenRaster (never over an existing file)."""
    from studio.formats.openraster import OraLayer, write_ora
    from studio.ui.canvas.convert import pil_from_qimage

    canvas = window.canvas
    if not canvas.has_image():
        window.show_message("There is nothing on the canvas to save.")
        return None
    if path is None:
        start = str(window.settings.output_path / "canvas.ora")
        path, _ = QFileDialog.getSaveFileName(
            window, "Save layered", start, ORA_FILTER, options=QFileDialog.Option.DontConfirmOverwrite
        )
        if not path:
            return None
    layers = []
    for layer in canvas.layer_list():
        image = pil_from_qimage(layer.image)
        if image.size != (layer.rect.width(), layer.rect.height()):
            image = image.resize((layer.rect.width(), layer.rect.height()))
        layers.append(
            OraLayer(layer.name, image, layer.rect.x(), layer.rect.y(), layer.visible, layer.opacity)
        )
    target = Path(path).with_suffix(".ora")
    try:
        saved = write_ora(target, canvas.image_size(), layers, canvas.image())
    except (StudioError, OSError) as error:
        window.show_message(f"Could not save {target.name}: {error}")
        return None
    note = "" if saved == target else f" ({target.name} exists, so a new name was used)"
    window.statusBar().showMessage(f"Saved {saved.name} with {len(layers)} layer(s){note}", 8000)
    return saved


def open_layered(window: MainWindow, path: str) -> bool:
    """Open an OpenRaster file with its layers (one undo step)."""
    from studio.formats.openraster import read_ora

    try:
        size, layers = read_ora(Path(path))
    except StudioError as error:
        window.show_message(str(error))
        return False
    window.canvas.open_layers(size, layers, Path(path).name)
    window.tabs.setCurrentWidget(window.canvas)
    window.statusBar().showMessage(f"Opened {Path(path).name} ({len(layers)} layers).", 8000)
    return True


def shortcuts(window: MainWindow) -> list[tuple[str, str]]:
    """(keys, what they do) for every shortcut: the canvas's actions, the menus', the window's."""
    rows: list[tuple[str, str]] = [
        ("Ctrl+Enter", "Generate (from anywhere)"),
        ("Esc", "Cancel the running job"),
        ("Alt+Enter / Enter on the canvas", "Accept the staged result"),
        ("Alt+Backspace / Backspace on the canvas", "Discard the staged results"),
        ("Alt+← / Alt+→", "Previous / next staged result"),
        ("Space + drag, middle drag", "Pan the canvas"),
        ("Shift + selection", "Add to the mask"),
        ("Alt + selection", "Subtract from the mask"),
        ("Ctrl+Shift+Z", "Redo (canvas and node editor)"),
    ]
    seen = {keys for keys, _ in rows}
    actions = list(window.canvas.actions())
    for menu in window.menuBar().findChildren(QMenu):
        actions += menu.actions()
    for action in actions:
        # Key names only: a platform's "Redo" key has no name to type, so it is left out.
        names = [s.toString() for s in action.shortcuts() if not s.isEmpty()]
        keys = ", ".join(name for name in names if "+" in name or len(name) <= 3)
        text = action.text().replace("&", "").rstrip("…")
        if keys and keys not in seen and text:
            seen.add(keys)
            tip = action.toolTip() if action.toolTip() != action.text() else text
            # Qt's tooltips end with the shortcut in brackets: the Keys column shows it.
            rows.append((keys, tip.removesuffix(f" ({names[0]})")))
    return rows


def show_shortcuts(window: MainWindow) -> QDialog:
    dialog = QDialog(window)
    dialog.setWindowTitle("Keyboard shortcuts")
    rows = shortcuts(window)
    table = QTableWidget(len(rows), 2)
    table.setObjectName("shortcuts")
    table.setHorizontalHeaderLabels(["Keys", "Does"])
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    for row, (keys, text) in enumerate(rows):
        table.setItem(row, 0, QTableWidgetItem(keys))
        table.setItem(row, 1, QTableWidgetItem(text))
    table.resizeColumnsToContents()
    table.horizontalHeader().setStretchLastSection(True)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(table)
    layout.addWidget(buttons)
    dialog.resize(620, 560)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
