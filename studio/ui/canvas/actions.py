"""The canvas's actions and their keys; the toolbar shows some, the window may reuse any."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence

if TYPE_CHECKING:
    from studio.ui.canvas.widget import Canvas

# Bound while results are staged, and only then: a disabled action would still hold its
# keys and make the window's own Delete or Enter ambiguous.
STAGING_KEYS = {
    "accept_staged": ["Return", "Enter"],
    "discard_staged": ["Backspace", "Delete"],
    "next_staged": ["Right"],
    "previous_staged": ["Left"],
}


TOOL_NAMES = ("brush", "eraser", "pan", "region", "rectangle", "ellipse", "lasso")


def make_actions(canvas: Canvas) -> dict[str, QAction]:
    """Create the canvas's actions on `canvas`, by name.

    Their shortcuts have widget-with-children context: active only while focus is in the
    canvas, so the window's own shortcuts (Esc to cancel, Ctrl+Enter to generate) never clash.
    """
    size = canvas.brush_size
    table = [
        ("brush", "Brush", "Paint the area to repaint", ["B"], lambda: canvas.set_tool("brush")),
        ("eraser", "Eraser", "Erase the mask", ["E"], lambda: canvas.set_tool("eraser")),
        (
            "pan",
            "Pan",
            "Drag the view (or hold Space, or drag with the middle button)",
            ["H"],
            lambda: canvas.set_tool("pan"),
        ),
        (
            "region",
            "Region",
            "Move or resize the generation region (drag inside it or its handles; drag "
            "outside it for a new one)",
            ["G"],
            lambda: canvas.set_tool("region"),
        ),
        (
            "rectangle",
            "Rectangle",
            "Select a rectangle (Shift adds to the mask, Alt subtracts)",
            ["M"],
            lambda: canvas.set_tool("rectangle"),
        ),
        (
            "ellipse",
            "Ellipse",
            "Select an ellipse (Shift adds to the mask, Alt subtracts)",
            ["O"],
            lambda: canvas.set_tool("ellipse"),
        ),
        (
            "lasso",
            "Lasso",
            "Select a free shape (Shift adds to the mask, Alt subtracts)",
            ["L"],
            lambda: canvas.set_tool("lasso"),
        ),
        (
            "fit_region",
            "Fit region to mask",
            "Make the generation region the mask's area plus some context",
            ["Shift+G"],
            canvas.fit_region_to_mask,
        ),
        (
            "whole_region",
            "Whole picture",
            "Make the generation region the whole picture",
            ["Alt+G"],
            canvas.reset_region,
        ),
        (
            "grow_mask",
            "Grow mask",
            "Grow the mask by 8 pixels",
            ["Ctrl+]"],
            lambda: canvas.grow_mask(8),
        ),
        (
            "shrink_mask",
            "Shrink mask",
            "Shrink the mask by 8 pixels",
            ["Ctrl+["],
            lambda: canvas.grow_mask(-8),
        ),
        ("clear_mask", "Clear", "Remove the whole mask", [], canvas.clear_mask),
        (
            "invert_mask",
            "Invert",
            "Invert the mask: repaint everything else",
            ["Ctrl+I"],
            canvas.invert_mask,
        ),
        ("fit", "Fit", "Fit the image in the view", ["Ctrl+0"], canvas.fit),
        (
            "actual_size",
            "100 %",
            "One image pixel per screen pixel",
            ["Ctrl+1"],
            canvas.actual_size,
        ),
        (
            "paste",
            "Paste image",
            "Open the image on the clipboard",
            [QKeySequence.StandardKey.Paste],
            canvas.paste,
        ),
        (
            "smaller_brush",
            "Smaller brush",
            "Smaller brush",
            ["["],
            lambda: canvas.set_brush_size(round(size() / 1.25)),
        ),
        (
            "larger_brush",
            "Larger brush",
            "Larger brush",
            ["]"],
            lambda: canvas.set_brush_size(max(size() + 1, round(size() * 1.25))),
        ),
        ("accept_staged", "Accept", "Keep this result as a new layer", [], canvas.accept_staged),
        ("discard_staged", "Discard", "Throw the results away", [], canvas.discard_staged),
        ("next_staged", "Next result", "Next result", [], canvas.next_staged),
        ("previous_staged", "Previous result", "Previous result", [], canvas.previous_staged),
    ]
    actions: dict[str, QAction] = {}
    for name, text, tip, keys, slot in table:
        action = QAction(text, canvas)
        action.setObjectName(name)
        action.setShortcuts([QKeySequence(key) for key in keys])
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tip} ({shortcut})" if shortcut else tip)
        action.triggered.connect(lambda _checked=False, slot=slot: slot())
        canvas.addAction(action)
        actions[name] = action
    tools = QActionGroup(canvas)
    for name in TOOL_NAMES:
        actions[name].setCheckable(True)
        tools.addAction(actions[name])
    bind_staging_keys(actions, False)
    return actions


def bind_staging_keys(actions: dict[str, QAction], staging: bool) -> None:
    """Enable the staging actions and their keys while results wait; unbind them otherwise."""
    for name, keys in STAGING_KEYS.items():
        actions[name].setEnabled(staging)
        actions[name].setShortcuts([QKeySequence(key) for key in keys] if staging else [])
