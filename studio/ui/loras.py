"""The prompt panel's LoRA list, VAE and clip-skip fields, and name completion in prompts.

All of it is a view of the workflow: the LoRA list shows the graph's LoRA nodes, adding one
inserts a node after the checkpoint loader, a strength is that node's parameter; VAE and clip
skip are the LoadVAE and ClipSkip nodes (none when the model's own VAE and the last layer are
wanted). Every change goes through the document, so it is undoable and the node editor shows it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSignalBlocker, QStringListModel, Qt, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.ui.document import WorkflowDocument

log = logging.getLogger(__name__)

LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt", ".bin")
EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")
OWN_VAE = "The model's own"


def model_folders() -> list[Path]:
    from studio.settings import Settings

    return [Path(p) for p in Settings.load().model_folders]


def files_of(kind: str, suffixes) -> list[Path]:
    """Files of a kind in the configured model folders (no torch: only names are listed)."""
    from studio.engine.folders import list_files

    try:
        return list_files(kind, model_folders(), suffixes)
    except OSError as exc:  # an unreadable folder must not break the panel
        log.info("Could not list %s files: %s", kind, exc)
        return []


class _FolderCombo(QComboBox):
    """A combo box that lists the model folders' files when opened, not on every graph edit."""

    aboutToShow = Signal()

    def showPopup(self) -> None:  # noqa: N802 (Qt's name)
        self.aboutToShow.emit()  # a signal, so the combo holds no reference to its box
        super().showPopup()


class ModelAddonsBox(QGroupBox):
    """LoRAs (add from the folders, strength, remove), VAE and clip skip of the workflow."""

    def __init__(self, document: WorkflowDocument, parent: QWidget | None = None) -> None:
        super().__init__("LoRA, VAE, clip skip", parent)
        self.setObjectName("model-addons")
        self.document = document
        self._spins: dict[str, tuple[QDoubleSpinBox, QSlider]] = {}
        self.rows = QVBoxLayout()
        self.rows.setContentsMargins(0, 0, 0, 0)
        self.add_lora = _FolderCombo()
        self.add_lora.aboutToShow.connect(self._fill_loras)
        self.add_lora.setObjectName("add-lora")
        self.add_lora.setToolTip("Add a LoRA from the model folders (File > Settings)")
        self.add_lora.activated.connect(self._lora_chosen)
        self.vae = _FolderCombo()
        self.vae.aboutToShow.connect(self._fill_vaes)
        self.vae.setObjectName("vae")
        self.vae.activated.connect(self._vae_chosen)
        self.clip_skip = QSpinBox()
        self.clip_skip.setObjectName("clip-skip")
        self.clip_skip.setRange(1, 12)
        self.clip_skip.setToolTip("1 = the text encoder's last layer; 2 = the one before, ...")
        self.clip_skip.valueChanged.connect(self._clip_skip_changed)
        form = QFormLayout()
        form.addRow("VAE", self.vae)
        form.addRow("Clip skip", self.clip_skip)
        layout = QVBoxLayout(self)
        layout.addLayout(self.rows)
        layout.addWidget(self.add_lora)
        layout.addLayout(form)
        document.structureChanged.connect(self.refresh)
        document.graphReplaced.connect(self.refresh)
        document.paramChanged.connect(self._param_changed)
        self.refresh()

    # -- graph -> widgets ------------------------------------------------------------------

    def nodes(self, node_type: str):
        return self.document.graph.find(node_type)

    def refresh(self) -> None:
        while self.rows.count():
            item = self.rows.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self._spins = {}
        for node in self.nodes("LoRA"):
            self.rows.addWidget(self._lora_row(node.id, node.params))
        with QSignalBlocker(self.add_lora):
            self.add_lora.clear()
            self.add_lora.addItem("Add LoRA…", "")
        with QSignalBlocker(self.vae):
            self.vae.clear()
            self.vae.addItem(OWN_VAE, "")
            current = self._current_vae()
            if current:
                self.vae.addItem(Path(current).name, current)
                self.vae.setCurrentIndex(1)
        skips = self.nodes("ClipSkip")
        with QSignalBlocker(self.clip_skip):
            self.clip_skip.setValue(int(skips[0].params.get("clip_skip", 1)) if skips else 1)
        # A workflow without a checkpoint (the upscale one) has nothing for these to change.
        self.setHidden(not self.nodes("LoadCheckpoint"))

    def _current_vae(self) -> str:
        vaes = self.nodes("LoadVAE")
        return str(vaes[0].params.get("path", "")) if vaes else ""

    def _fill_loras(self) -> None:
        from studio.ui.servers import server_files  # when jobs run on ComfyUI servers

        combo = self.add_lora
        with QSignalBlocker(combo):  # refilling is not a choice: no index signals
            combo.clear()
            combo.addItem("Add LoRA…", "")
            for path in files_of("lora", LORA_SUFFIXES):
                combo.addItem(path.stem, str(path))
            for name, label in server_files("loras"):
                combo.addItem(label, name)

    def _fill_vaes(self) -> None:
        combo = self.vae
        current = self._current_vae()
        with QSignalBlocker(combo):
            combo.clear()
            combo.addItem(OWN_VAE, "")
            for path in files_of("vae", LORA_SUFFIXES):
                combo.addItem(path.name, str(path))
            if current and combo.findData(current) < 0:
                combo.addItem(Path(current).name, current)
            combo.setCurrentIndex(max(0, combo.findData(current)))

    def _lora_row(self, node_id: str, params: dict) -> QWidget:
        row = QWidget()
        row.setObjectName(f"lora-{node_id}")
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        name = QLabel(Path(str(params.get("path", ""))).stem or "(no file)")
        name.setToolTip(str(params.get("path", "")))
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(-200, 200)
        spin = QDoubleSpinBox()
        spin.setRange(-10.0, 10.0)
        spin.setSingleStep(0.05)
        spin.setDecimals(2)
        strength = float(params.get("strength", 1.0))
        spin.setValue(strength)
        slider.setValue(round(strength * 100))
        slider.valueChanged.connect(lambda value: spin.setValue(value / 100))
        spin.valueChanged.connect(lambda value: self._strength(node_id, value, slider))
        self._spins[node_id] = (spin, slider)
        remove = QToolButton()
        remove.setText("×")
        remove.setToolTip("Remove this LoRA")
        remove.clicked.connect(lambda: self._remove(node_id))
        line.addWidget(name, 2)
        line.addWidget(slider, 2)
        line.addWidget(spin, 1)
        line.addWidget(remove)
        return row

    def _param_changed(self, node_id: str, param: str, value) -> None:
        node = self.document.graph.nodes.get(node_id)
        if node is None or node.type not in ("LoRA", "LoadVAE", "ClipSkip"):
            return
        if param == "strength" and node_id in self._spins:
            spin, slider = self._spins[node_id]
            if spin.value() != value:  # set elsewhere (node editor, undo): show it
                with QSignalBlocker(spin), QSignalBlocker(slider):
                    spin.setValue(float(value))
                    slider.setValue(round(float(value) * 100))
        elif param != "text_strength":
            self.refresh()

    # -- widgets -> graph ------------------------------------------------------------------

    def _strength(self, node_id: str, value: float, slider: QSlider) -> None:
        with QSignalBlocker(slider):
            slider.setValue(round(value * 100))
        node = self.document.graph.nodes.get(node_id)
        if node is None:
            return
        stack = self.document.undo_stack
        stack.beginMacro("LoRA strength")
        try:
            self.document.set_param(node_id, "strength", float(value))
            self.document.set_param(node_id, "text_strength", float(value))
        finally:
            stack.endMacro()

    def _lora_chosen(self, index: int) -> None:
        from studio.nodes.model_addons import LoraChoice, add_model_addons

        path = self.add_lora.itemData(index)
        if path:
            self.document._edit(
                "Add LoRA", lambda graph: add_model_addons(graph, loras=[LoraChoice(path)])
            )

    def _remove(self, node_id: str) -> None:
        from studio.nodes.model_addons import remove_addon

        self.document._edit("Remove LoRA", lambda graph: remove_addon(graph, node_id))

    def _vae_chosen(self, index: int) -> None:
        from studio.nodes.model_addons import add_model_addons, remove_addon

        path = self.vae.itemData(index) or ""

        def change(graph) -> None:
            for node in graph.find("LoadVAE"):
                remove_addon(graph, node.id)
            if path:
                add_model_addons(graph, vae=path)

        self.document._edit("VAE", change)

    def _clip_skip_changed(self, value: int) -> None:
        from studio.nodes.model_addons import add_model_addons, remove_addon

        skips = self.nodes("ClipSkip")
        if skips and value > 1:
            for node in skips:
                self.document.set_param(node.id, "clip_skip", int(value))
            return

        def change(graph) -> None:
            for node in graph.find("ClipSkip"):
                remove_addon(graph, node.id)
            if value > 1:
                add_model_addons(graph, clip_skip=value)

        self.document._edit("Clip skip", change)


# --- completion in prompts --------------------------------------------------------------------

_LORA_TAG = re.compile(r"<lora:([^:<>]*)$", re.IGNORECASE)
_WORD = re.compile(r"([\w\-.]{2,})$")


def completion_names() -> tuple[list[str], list[str]]:
    """LoRA names and embedding names in the model folders."""
    loras = sorted({p.stem for p in files_of("lora", LORA_SUFFIXES)}, key=str.lower)
    embeddings = sorted({p.stem for p in files_of("embedding", EMBEDDING_SUFFIXES)}, key=str.lower)
    return loras, embeddings


def attach_completion(
    widget: QWidget, names: Callable[[], tuple[list[str], list[str]]] = completion_names
) -> QCompleter | None:
    """Complete `<lora:NAME` and embedding names while typing in a prompt box."""
    if not isinstance(widget, QPlainTextEdit):
        return None
    completer = QCompleter(widget)
    completer.setObjectName("prompt-completer")
    completer.setWidget(widget)
    completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
    model = QStringListModel(completer)
    completer.setModel(model)
    state: dict = {"prefix": "", "lora": False, "names": None, "listed": 0.0}

    def typed() -> None:
        cursor = widget.textCursor()
        before = widget.toPlainText()[: cursor.position()]
        tag = _LORA_TAG.search(before)
        word = None if tag else _WORD.search(before)
        if tag is None and word is None:
            completer.popup().hide()
            return
        # Listed again after a while: the user may add files to the folders meanwhile.
        if state["names"] is None or time.monotonic() - state["listed"] > 10:
            state["names"], state["listed"] = names(), time.monotonic()
        loras, embeddings = state["names"]
        prefix = tag.group(1) if tag else word.group(1)
        choices = loras if tag else embeddings
        if not choices:
            return
        state.update(prefix=prefix, lora=bool(tag))
        model.setStringList(choices)
        completer.setCompletionPrefix(prefix)
        if completer.completionCount() == 0 or (
            completer.completionCount() == 1 and completer.currentCompletion() == prefix
        ):
            completer.popup().hide()
            return
        rect = widget.cursorRect()
        rect.setWidth(240)
        completer.complete(rect)

    def chosen(text: str) -> None:
        cursor = widget.textCursor()
        cursor.movePosition(
            QTextCursor.MoveOperation.Left, QTextCursor.MoveMode.KeepAnchor, len(state["prefix"])
        )
        cursor.insertText(f"{text}:1>" if state["lora"] else text)
        widget.setTextCursor(cursor)

    widget.textChanged.connect(typed)
    completer.activated.connect(chosen)
    return completer


def restore_addons_into(document: WorkflowDocument, params) -> list[str]:
    """Put an image's clip skip, VAE and LoRAs into the document (one undo step); notes."""
    from studio.graph.serialize import to_dict
    from studio.nodes.model_addons import folder_finder, restore_addons

    find = folder_finder(model_folders())
    trial = document.graph.copy()
    notes = restore_addons(trial, params.prompt, params.extra, find)
    if to_dict(trial) != to_dict(document.graph):  # no undo step for a change of nothing
        document._edit(
            "Restore LoRA, VAE, clip skip",
            lambda graph: restore_addons(graph, params.prompt, params.extra, find),
        )
    return notes
