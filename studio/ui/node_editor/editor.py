"""The node editor widget: toolbar, graph view and node palette over one WorkflowDocument."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMessageBox,
    QSizePolicy,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from studio.errors import StudioError
from studio.graph import serialize
from studio.ui.document import WorkflowDocument
from studio.ui.node_editor import style
from studio.ui.node_editor.clipboard import can_paste, copy_nodes, paste_nodes
from studio.ui.node_editor.palette import NodePalette
from studio.ui.node_editor.scene import NodeScene
from studio.ui.node_editor.view import NodeView

log = logging.getLogger(__name__)

WORKFLOW_FILTER = "Studio workflows (*.json);;All files (*)"
PASTE_OFFSET = 40.0


class NodeEditor(QWidget):
    """The pipeline as nodes and links. message(sentence) is for the status bar."""

    message = Signal(str)

    def __init__(self, document: WorkflowDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self._scene = NodeScene(document, self)
        self._view = NodeView(self._scene, self)
        self.palette = NodePalette(document.specs, self)
        self._palette_at = QPointF()
        self._pastes = 0
        self.message_box: QMessageBox | None = None

        self._scene.message.connect(self.message)
        self._scene.paletteRequested.connect(self.show_palette)
        self._view.paletteRequested.connect(self.show_palette)
        self.palette.chosen.connect(self._add_chosen)
        document.graphReplaced.connect(self._on_replaced)

        self.toolbar = QToolBar(self)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self._make_actions()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self._view, 1)

    def scene(self) -> NodeScene:
        return self._scene

    def view(self) -> NodeView:
        return self._view

    def _make_actions(self) -> None:
        def action(text: str, slot, keys=(), tip: str = "") -> QAction:
            act = QAction(text, self)
            act.triggered.connect(slot)
            if keys:
                act.setShortcuts([QKeySequence(k) for k in keys])
            # Shortcuts work while the editor (or a field in it) has focus, not app-wide:
            # the canvas has its own undo and delete.
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            if tip:
                act.setToolTip(tip)
            self.addAction(act)
            return act

        self.add_action = action(
            "Add node",
            lambda: self.show_palette(self._view.cursor_scene_pos()),
            (),
            "Add a node (Tab, or right-click empty space)",
        )
        self.open_action = action("Open…", self._choose_open, (), "Open a workflow file")
        self.save_action = action("Save…", self._choose_save, (), "Save this workflow to a file")
        stack = self.document.undo_stack
        # Fixed texts keep the toolbar still; what would be undone shows in the tooltip.
        self.undo_action = action("Undo", stack.undo, (QKeySequence.StandardKey.Undo,))
        self.redo_action = action("Redo", stack.redo, ("Ctrl+Shift+Z", "Ctrl+Y"))
        self.undo_action.setEnabled(stack.canUndo())
        self.redo_action.setEnabled(stack.canRedo())
        stack.canUndoChanged.connect(self.undo_action.setEnabled)
        stack.canRedoChanged.connect(self.redo_action.setEnabled)
        # Bound methods, not lambdas: the document outlives this widget, and Qt drops a
        # connection to a method of a deleted QObject but not one to a lambda.
        stack.undoTextChanged.connect(self._undo_text_changed)
        stack.redoTextChanged.connect(self._redo_text_changed)
        self.fit_action = action("Fit", self.fit, ("Home",), "Show the whole workflow (Home)")
        self.delete_action = action("Delete", self._scene.delete_selected, ("Del", "Backspace"))
        self.copy_action = action("Copy", self.copy_selection, (QKeySequence.StandardKey.Copy,))
        self.paste_action = action("Paste", self.paste, (QKeySequence.StandardKey.Paste,))
        self.select_all_action = action(
            "Select all", self._select_all, (QKeySequence.StandardKey.SelectAll,)
        )
        self._view.claimed_actions = [
            self.undo_action,
            self.redo_action,
            self.delete_action,
            self.copy_action,
            self.paste_action,
            self.select_all_action,
            self.fit_action,
        ]
        for act in (
            self.add_action,
            self.open_action,
            self.save_action,
            self.undo_action,
            self.redo_action,
            self.fit_action,
        ):
            self.toolbar.addAction(act)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.toolbar.addWidget(spacer)
        self.toolbar.addWidget(_legend())

    def _undo_text_changed(self, text: str) -> None:
        self.undo_action.setToolTip(f"Undo {text}".strip() + " (Ctrl+Z)")

    def _redo_text_changed(self, text: str) -> None:
        self.redo_action.setToolTip(f"Redo {text}".strip() + " (Ctrl+Shift+Z)")

    # -- run status ----------------------------------------------------------------------------

    def set_running(self, node_id: str | None) -> None:
        """Highlight the node being run (None: none)."""
        self._scene.set_running(node_id)

    def set_node_progress(self, node_id: str, step: int, total: int) -> None:
        """Show step/total as a bar on the node."""
        self._scene.set_node_progress(node_id, step, total)

    def set_node_error(self, node_id: str | None, message: str) -> None:
        """Draw the error on the failed node; None clears every error."""
        self._scene.set_node_error(node_id, message)

    def clear_status(self) -> None:
        """Clear highlights, progress and errors (a new job starts)."""
        self._scene.clear_status()

    # -- files ---------------------------------------------------------------------------------

    def open_workflow(self, path: str) -> None:
        """Replace the document with the workflow in `path`; a problem is shown, not raised."""
        try:
            graph = serialize.load(path)
        except StudioError as error:
            self._complain("Open workflow", str(error))
            return
        self.document.replace(graph)
        unknown = sorted(
            {n.type for n in graph.nodes.values() if n.type not in self.document.specs}
        )
        name = graph.name or Path(path).stem
        if unknown:
            self.message.emit(
                f'Opened "{name}", but this Studio does not know the node type(s) '
                f"{', '.join(unknown)}; the workflow cannot run until they are replaced."
            )
        else:
            self.message.emit(f'Opened "{name}".')

    def save_workflow(self, path: str) -> None:
        """Write the document to `path` (atomically); a problem is shown, not raised."""
        try:
            serialize.save(self.document.graph, path)
        except StudioError as error:
            self._complain("Save workflow", str(error))
            return
        self.document.undo_stack.setClean()
        self.message.emit(f'Saved the workflow to "{path}".')

    def _complain(self, title: str, text: str) -> None:
        log.warning("%s: %s", title, text)
        # open(), not exec(): a modal loop here would stall the running job's previews.
        self.message_box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=self)
        self.message_box.open()
        self.message.emit(text)

    def _choose_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open workflow", "", WORKFLOW_FILTER)
        if path:
            self.open_workflow(path)

    def _choose_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save workflow", "", WORKFLOW_FILTER)
        if path:
            if not Path(path).suffix:
                path += ".json"
            self.save_workflow(path)

    # -- editing -------------------------------------------------------------------------------

    def fit(self) -> None:
        """Zoom and scroll so the whole workflow shows."""
        self._view.fit()

    def show_palette(self, scene_pos: QPointF) -> None:
        """Open the node palette; the chosen node is added at `scene_pos`."""
        self._palette_at = QPointF(scene_pos)
        view_pos = self._view.mapFromScene(scene_pos)
        self.palette.popup(self._view.viewport().mapToGlobal(view_pos))

    def add_node(self, node_type: str, scene_pos: QPointF) -> str:
        node_id = self.document.add_node(node_type, (scene_pos.x(), scene_pos.y()))
        self._scene.select_nodes([node_id])
        return node_id

    def _add_chosen(self, node_type: str) -> None:
        self.add_node(node_type, self._palette_at)
        self._view.setFocus()

    def copy_selection(self) -> None:
        data = copy_nodes(self.document.graph, self._scene.selected_ids())
        if data is not None:
            QGuiApplication.clipboard().setMimeData(data)
            self._pastes = 0

    def paste(self) -> None:
        data = QGuiApplication.clipboard().mimeData()
        if not can_paste(data):
            return
        self._pastes += 1
        offset = PASTE_OFFSET * self._pastes
        new_ids = paste_nodes(self.document, data, (offset, offset))
        self._scene.select_nodes(new_ids)

    def _select_all(self) -> None:
        self._scene.select_nodes(list(self._scene.nodes))

    def _on_replaced(self) -> None:
        self._pastes = 0
        self.fit()


def _legend() -> QLabel:
    """Port colours by type, so a user can read links without hovering them."""
    parts = [
        f'<span style="color:{color.name()}">●</span>&nbsp;{name.replace("_", " ").lower()}'
        for name, color in style.PORT_COLORS.items()
    ]
    label = QLabel("&nbsp;&nbsp;".join(parts) + "&nbsp;&nbsp;")
    label.setFont(style.ui_font(8.5))
    label.setToolTip("Link and port colours by the kind of data they carry")
    return label
