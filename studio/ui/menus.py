"""The window's menus and their shortcuts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence, QUndoGroup
from PySide6.QtWidgets import QFileDialog

from studio.errors import StudioError
from studio.ui import canvas_actions

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
    action(file, "Save &layered (.ora)…", lambda: canvas_actions.save_layered(window), "Ctrl+Shift+S")
    file.addSeparator()
    action(file, "Open &workflow…", lambda: open_workflow(window), "Ctrl+Shift+O")
    action(file, "&Import ComfyUI workflow…", lambda: import_dialog(window))
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
    # Ctrl+Shift+Z as well as the platform's own (Ctrl+Y on Windows), as in the node editor.
    redo_keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Redo)
    if QKeySequence("Ctrl+Shift+Z") not in redo_keys:
        redo_keys.append(QKeySequence("Ctrl+Shift+Z"))
    redo.setShortcuts(redo_keys)
    edit.addAction(undo)
    edit.addAction(redo)
    edit.addSeparator()
    action(edit, "Clear mask", canvas.clear_mask)
    action(edit, "Invert mask", canvas.invert_mask)  # Ctrl+I on the canvas

    image = bar.addMenu("&Image")
    action(image, "&Expand canvas (outpaint)…", lambda: canvas_actions.expand_canvas(window), "Ctrl+Alt+C")
    for name in ("fit_region", "whole_region", "grow_mask", "shrink_mask"):
        image.addAction(canvas.action(name))

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
    view.addAction(window.layers_dock.toggleViewAction())

    help_menu = bar.addMenu("&Help")
    action(help_menu, "&Keyboard shortcuts", lambda: canvas_actions.show_shortcuts(window), "F1")


def open_workflow(window: MainWindow) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Open workflow", "", WORKFLOW_FILTER)
    if path:
        # Problems are shown by the node editor; the window then shows no mode as current.
        window.node_editor.open_workflow(path)


def import_dialog(window: MainWindow) -> None:
    path, _ = QFileDialog.getOpenFileName(
        window, "Import ComfyUI workflow", "", "ComfyUI workflows (*.json *.png);;All files (*)"
    )
    if path:
        import_workflow(window, path)


def import_workflow(window: MainWindow, path: str) -> bool:
    """Import a ComfyUI workflow (API-format JSON, or a PNG ComfyUI saved) into the window."""
    from pathlib import Path

    from studio.nodes.workflow_files import load_any_workflow

    try:
        graph = load_any_workflow(Path(path))
    except StudioError as error:
        window.show_message(f"Import: {error}")
        return False
    window.load_graph(graph)
    window.show_message(f'Imported "{graph.name or Path(path).stem}".', error=False)
    return True


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
