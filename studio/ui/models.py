"""The checkpoints the model selector offers: the bundled one first, then the user's folders.

Scanning classifies files by reading their weights' names and shapes (studio.engine, so torch):
it runs on the Background pool, never on the GUI thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QComboBox, QFileDialog

from studio.graph.spec import Param
from studio.paths import DEMO_CHECKPOINT
from studio.ui.background import Background
from studio.ui.fields import Field

log = logging.getLogger(__name__)

BUILT_IN_LABEL = "Studio Shapes (built-in)"


@dataclass(frozen=True)
class ModelChoice:
    path: str
    label: str  # what the selector shows
    family: str = ""  # detected family, e.g. "SD 1.x"; "" while unknown


def built_in_model() -> ModelChoice | None:
    if DEMO_CHECKPOINT.is_dir():
        return ModelChoice(str(DEMO_CHECKPOINT), BUILT_IN_LABEL, "SD 1.x")
    return None


class ModelList(QObject):
    """The selectable checkpoints; `changed` fires when a scan of the folders completes."""

    changed = Signal()

    def __init__(self, background: Background, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._background = background
        self._scanned: list[ModelChoice] = []
        self._on_servers: list[ModelChoice] = []  # checkpoints of the user's ComfyUI servers
        self.scanning = False

    def choices(self) -> list[ModelChoice]:
        built_in = built_in_model()
        return ([built_in] if built_in else []) + list(self._scanned) + list(self._on_servers)

    def scan_servers(self, servers: list[Any]) -> None:
        """List the checkpoints (and LoRAs, upscale models) of these ComfyUI servers as
        "NAME (on SERVER)" (off the GUI thread); a model's value is the server's file name.
        Emits `changed` when done."""
        from studio.ui.servers import list_server_files, remember_server_files

        if not servers:
            remember_server_files({})
            if self._on_servers:
                self._on_servers = []
                self.changed.emit()
            return

        def work() -> dict[str, list[tuple[str, str]]]:
            return list_server_files(servers)

        def done(found: dict[str, list[tuple[str, str]]]) -> None:
            remember_server_files(found)
            self._on_servers = [ModelChoice(n, label) for n, label in found.get("checkpoints", [])]
            self.changed.emit()

        def failed(error: BaseException) -> None:
            log.warning("Listing the servers' models failed: %s", error)

        self._background.run(work, done, failed)

    def label_for(self, path: str) -> str:
        for choice in self.choices():
            if _same(choice.path, path):
                return choice.label
        return Path(path).name if path else ""

    def default_path(self, configured: str = "") -> str:
        """The user's default model, else the built-in one, else the first found, else ""."""
        if configured:
            return configured
        choices = self.choices()
        return choices[0].path if choices else ""

    def scan(self, folders: list[str]) -> None:
        """Look for checkpoints in `folders` (off the GUI thread); emits `changed` when done."""
        if not folders:
            self._scanned = []
            self.changed.emit()
            return
        self.scanning = True

        def work() -> list[ModelChoice]:
            from studio.engine.catalog import scan_models

            found = scan_models([Path(f) for f in folders])
            return [
                ModelChoice(str(e.path), f"{e.path.name} ({e.label})", e.label)
                for e in found
                if e.kind == "checkpoint"
            ]

        def done(found: list[ModelChoice]) -> None:
            self.scanning = False
            self._scanned = found
            self.changed.emit()

        def failed(error: BaseException) -> None:
            self.scanning = False
            log.warning("Scanning the model folders failed: %s", error)

        self._background.run(work, done, failed)


def _same(a: str, b: str) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except OSError:
        return a == b


class ModelField(Field):
    """The model selector: the known checkpoints, whatever the graph names, and Browse…."""

    _BROWSE = "__browse__"

    def __init__(self, param: Param, models: ModelList) -> None:
        combo = QComboBox()
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(12)
        super().__init__(param, combo)
        self.models = models
        self._value = ""
        self._fill()
        models.changed.connect(self._fill)
        combo.activated.connect(self._chosen)

    def _fill(self) -> None:
        combo: QComboBox = self.widget  # type: ignore[assignment]
        with QSignalBlocker(combo):
            combo.clear()
            for choice in self.models.choices():
                combo.addItem(choice.label, choice.path)
                combo.setItemData(combo.count() - 1, choice.path, Qt.ItemDataRole.ToolTipRole)
            if self._value and combo.findData(self._value) < 0:
                # A model the graph names that no folder holds: still show (and keep) it.
                combo.addItem(self.models.label_for(self._value), self._value)
            if combo.count() == 0:
                combo.addItem("No model: add a folder in Settings", "")
            combo.addItem("Browse…", self._BROWSE)
            combo.setCurrentIndex(max(0, combo.findData(self._value)))

    def _chosen(self, index: int) -> None:
        combo: QComboBox = self.widget  # type: ignore[assignment]
        path = combo.itemData(index)
        if path == self._BROWSE:
            chosen, _ = QFileDialog.getOpenFileName(
                combo,
                "Choose a checkpoint",
                str(Path(self._value).parent) if self._value else str(Path.home()),
                "Checkpoints (*.safetensors *.ckpt *.pt *.pth);;All files (*)",
            )
            if not chosen:
                self._fill()
                return
            path = chosen
        if path != self._value:
            self._emit(path)

    def value(self) -> str:
        return self._value

    def set_value(self, value: Any) -> None:
        self._value = str(value or "")
        self._fill()

    def detach(self) -> None:
        try:
            self.models.changed.disconnect(self._fill)
        except (RuntimeError, TypeError):
            pass
