"""The window's look: Qt's Fusion style with a dark palette by default."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = QColor(74, 144, 226)


def apply_theme(app: QApplication, theme: str = "dark") -> None:
    """Fusion everywhere (same look on every platform); "dark" or "light" colours."""
    app.setStyle("Fusion")
    if theme != "dark":
        app.setPalette(app.style().standardPalette())
        return
    palette = QPalette()
    window, base, text = QColor(37, 38, 41), QColor(27, 28, 30), QColor(220, 221, 224)
    disabled = QColor(120, 122, 128)
    role = QPalette.ColorRole
    for name, colour in (
        (role.Window, window),
        (role.WindowText, text),
        (role.Base, base),
        (role.AlternateBase, QColor(44, 45, 49)),
        (role.ToolTipBase, QColor(50, 51, 56)),
        (role.ToolTipText, text),
        (role.PlaceholderText, disabled),
        (role.Text, text),
        (role.Button, QColor(48, 49, 54)),
        (role.ButtonText, text),
        (role.BrightText, QColor(255, 90, 90)),
        (role.Light, QColor(70, 72, 78)),
        (role.Midlight, QColor(58, 60, 66)),
        (role.Mid, QColor(44, 45, 49)),
        (role.Dark, QColor(20, 21, 23)),
        (role.Shadow, QColor(0, 0, 0)),
        (role.Highlight, ACCENT),
        (role.HighlightedText, QColor(255, 255, 255)),
        (role.Link, ACCENT.lighter(130)),
    ):
        palette.setColor(name, colour)
    group = QPalette.ColorGroup.Disabled
    for name in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(group, name, disabled)
    app.setPalette(palette)
