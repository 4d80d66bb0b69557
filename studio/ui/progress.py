"""The progress strip in the status bar: what runs, step n of N, time left, and Cancel."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget


def format_seconds(seconds: float) -> str:
    if seconds < 0:
        return ""
    if seconds < 60:
        return f"{seconds:.0f} s left"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s left"


class ProgressStrip(QWidget):
    """Hidden while idle. Signal: cancelRequested()."""

    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setFixedWidth(220)
        self.bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancelRequested)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label)
        row.addWidget(self.bar)
        row.addWidget(self.cancel_button)
        self.setVisible(False)

    def start(self, text: str = "Starting…") -> None:
        self.label.setText(text)
        self.bar.setRange(0, 0)  # busy until the first step is known
        self.cancel_button.setEnabled(True)
        self.setVisible(True)

    def node(self, title: str) -> None:
        self.label.setText(title)
        self.bar.setRange(0, 0)

    def step(self, step: int, total: int, seconds_left: float) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(step)
        left = format_seconds(seconds_left)
        self.bar.setFormat(f"step {step}/{total}" + (f" · {left}" if left else ""))

    def cancelling(self) -> None:
        self.label.setText("Cancelling…")
        self.cancel_button.setEnabled(False)

    def stop(self) -> None:
        self.setVisible(False)
