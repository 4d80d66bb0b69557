"""The window's menus and their shortcuts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence, QUndoGroup
from PySide6.QtWidgets import QFileDialog

from studio.errors import StudioError

if TYPE_CHECKING:
    from studio.ui.main_window import MainWindow

WORKFLOW_FILTER = "Workflows (*.json *.png);;All files (*)"


def build_menus(window: MainWindow) -> None:
    session, canvas = window.session, window.canvas
    bar = window.menuBar()

    def action(menu, text: str, slot, shortcut=None) -> QAction:
        item = menu.addAction(text)
        item.triggered.connect(lambda checked=False: slot())
        if shortcut is not None:
            item.setShortcut(QKeySequence(shortcut))
        return item

    file = bar.addMenu("&File")
    action(file, "&Open image…", session.open_dialog, QKeySequence.StandardKey.Open)
    action(file, "Paste image", session.paste, "Ctrl+Shift+V")
    action(file, "&Export image…", session.export, "Ctrl+E")
    file.addSeparator()
    action(file, "Open &workflow…", lambda: open_workflow(window), "Ctrl+Shift+O")
    action(file, "&Save workflow…", lambda: save_workflow(window), QKeySequence.StandardKey.Save)
    action(file, "Restore parameters from image…", lambda: restore_dialog(window))
    file.addSeparator()
    action(file, "Se&ttings…", lambda: open_settings(window), QKeySequence.StandardKey.Preferences)
    action(file, "&Quit", window.close, QKeySequence.StandardKey.Quit)

    edit = bar.addMenu("&Edit")
    window.undo_group = QUndoGroup(window)
    window.undo_group.addStack(canvas.undo_stack)
    window.undo_group.addStack(window.document.undo_stack)
    window.undo_group.setActiveStack(canvas.undo_stack)
    undo = window.undo_group.createUndoAction(window, "&Undo")
    undo.setShortcut(QKeySequence.StandardKey.Undo)
    redo = window.undo_group.createRedoAction(window, "&Redo")
    redo.setShortcut(QKeySequence.StandardKey.Redo)
    edit.addAction(undo)
    edit.addAction(redo)
    edit.addSeparator()
    action(edit, "Clear mask", canvas.clear_mask)
    action(edit, "Invert mask", canvas.invert_mask)  # Ctrl+I on the canvas

    run = bar.addMenu("&Generate")
    action(run, "&Generate", session.generate)  # Ctrl+Enter is a window shortcut
    action(run, "&Cancel", session.cancel)  # Esc
    run.addSeparator()
    action(run, "&Accept result", canvas.accept_staged, "Ctrl+Shift+Return")
    action(run, "&Discard results", canvas.discard_staged, "Ctrl+Shift+Backspace")
    action(run, "&Next result", canvas.next_staged, "Ctrl+Right")
    action(run, "&Previous result", canvas.previous_staged, "Ctrl+Left")
    run.addSeparator()
    for mode, label in (
        ("txt2img", "Text to image"),
        ("img2img", "Image to image"),
        ("inpaint", "Inpaint"),
        ("upscale", "Upscale"),
    ):
        action(run, label, lambda m=mode: window.switch_mode(m))

    view = bar.addMenu("&View")
    # Ctrl+0 / Ctrl+1 are the canvas's own shortcuts (active while it has focus).
    action(view, "Fit canvas", canvas.fit)
    action(view, "Actual size", canvas.actual_size)
    action(view, "Fit nodes", window.node_editor.fit)
    view.addSeparator()
    view.addAction(window.panel_dock.toggleViewAction())
    view.addAction(window.gallery_dock.toggleViewAction())


def open_workflow(window: MainWindow) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Open workflow", "", WORKFLOW_FILTER)
    if path:
        # Problems are shown by the node editor; the window then shows no mode as current.
        window.node_editor.open_workflow(path)


def save_workflow(window: MainWindow) -> None:
    path, _ = QFileDialog.getSaveFileName(window, "Save workflow", "", "Workflow (*.json)")
    if path:
        try:
            window.node_editor.save_workflow(path)
        except (StudioError, OSError) as error:
            window.show_message(str(error))


def restore_dialog(window: MainWindow) -> None:
    path, _ = QFileDialog.getOpenFileName(
        window,
        "Restore parameters from",
        str(window.settings.output_path),
        "Images (*.png *.jpg *.jpeg *.webp)",
    )
    if path:
        window.session.restore_parameters(path)


def open_settings(window: MainWindow) -> None:
    from studio.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(window.settings, window.background, window)
    if dialog.exec():
        settings = dialog.result_settings()
        try:
            settings.save()
        except (StudioError, OSError) as error:
            window.show_message(f"Could not save the settings: {error}")
        window.apply_settings(settings)
