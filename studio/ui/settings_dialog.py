"""The settings dialog: model folders (scanned, each model's family shown), output folder,
device, precision, memory mode, preview method, theme, and where jobs run (this computer or
ComfyUI servers). Saved as the typed Settings JSON by the caller."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.settings import Settings
from studio.ui.background import Background

DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = (("", "Device default"), ("fp16", "fp16"), ("bf16", "bf16"), ("fp32", "fp32"))
MEMORY_MODES = (
    ("auto", "Auto (from the free memory)"),
    ("none", "None"),
    ("attention slicing", "Attention slicing"),
    ("model offload", "Model CPU offload (CUDA)"),
    ("sequential offload", "Sequential CPU offload (CUDA, slowest)"),
)
PREVIEWS = (("latent", "Fast latent preview"), ("none", "No preview"))
THEMES = (("dark", "Dark"), ("light", "Light"))
BACKENDS = (("local", "This computer"), ("comfyui", "ComfyUI servers"))


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, background: Background, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.resize(640, 520)
        self._settings = settings
        self._background = background

        self.folders = QListWidget()
        self.folders.addItems(settings.model_folders)
        add, remove, scan = QPushButton("Add…"), QPushButton("Remove"), QPushButton("Scan")
        add.clicked.connect(self._add_folder)
        remove.clicked.connect(self._remove_folder)
        scan.clicked.connect(self.scan)
        buttons = QVBoxLayout()
        for button in (add, remove, scan):
            buttons.addWidget(button)
        buttons.addStretch(1)
        folders = QHBoxLayout()
        folders.addWidget(self.folders, 1)
        folders.addLayout(buttons)
        self.found = QTreeWidget()
        self.found.setHeaderLabels(["Model", "Detected"])
        self.found.setRootIsDecorated(False)
        self.found.setColumnWidth(0, 300)

        self.output = QLineEdit(settings.output_folder)
        self.output.setPlaceholderText(str(settings.output_path))
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse_output)
        output = QHBoxLayout()
        output.addWidget(self.output, 1)
        output.addWidget(browse)

        self.device = _combo([(d, d) for d in DEVICES], settings.device)
        self.precision = _combo(PRECISIONS, settings.precision)
        self.memory_mode = _combo(MEMORY_MODES, settings.memory_mode)
        self.memory_mode.setToolTip(
            "How sampling saves memory on small GPUs and for big pictures. Auto chooses per "
            "job from the free memory; the job says which mode it used."
        )
        self.preview = _combo(PREVIEWS, settings.preview)
        self.theme = _combo(THEMES, settings.theme)
        self.backend = _combo(BACKENDS, settings.backend)
        self.servers = QPlainTextEdit("\n".join(settings.servers))
        self.servers.setPlaceholderText("http://192.168.1.20:8188 (one ComfyUI server a line)")
        self.servers.setFixedHeight(64)
        self.token = QLineEdit(next(iter(settings.server_tokens.values()), ""))
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("only if the servers ask for one")
        check = QPushButton("Check")
        check.clicked.connect(self.check_servers)
        token = QHBoxLayout()
        token.addWidget(self.token, 1)
        token.addWidget(check)
        self.server_state = QLabel("")
        self.server_state.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Model folders", folders)
        form.addRow("", self.found)
        form.addRow("Output folder", output)
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        form.addRow("Memory mode", self.memory_mode)
        form.addRow("Preview", self.preview)
        form.addRow("Theme", self.theme)
        form.addRow("Run jobs on", self.backend)
        form.addRow("ComfyUI servers", self.servers)
        form.addRow("Server token", token)
        form.addRow("", self.server_state)
        box = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        box.accepted.connect(self.accept)
        box.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(box)
        if settings.model_folders:
            self.scan()

    def folder_list(self) -> list[str]:
        return [self.folders.item(i).text() for i in range(self.folders.count())]

    def result_settings(self) -> Settings:
        token = self.token.text().strip()
        return dataclasses.replace(
            self._settings,
            model_folders=self.folder_list(),
            output_folder=self.output.text().strip(),
            device=self.device.currentData(),
            precision=self.precision.currentData(),
            memory_mode=self.memory_mode.currentData(),
            preview=self.preview.currentData(),
            theme=self.theme.currentData(),
            backend=self.backend.currentData(),
            servers=self.server_list(),
            server_tokens=dict.fromkeys(self.server_list(), token) if token else {},
        )

    def server_list(self) -> list[str]:
        return [line.strip() for line in self.servers.toPlainText().splitlines() if line.strip()]

    def check_servers(self) -> None:
        """Ask each server whether it answers (off the GUI thread) and say what it has."""
        urls, token = self.server_list(), self.token.text().strip()
        self.server_state.setText("Checking…" if urls else "No server to check.")

        def work() -> str:
            from studio.runtime.remote.pool import describe_servers

            return describe_servers(urls, token)

        self._background.run(work, self.server_state.setText, self._check_failed)

    def _check_failed(self, error: BaseException) -> None:
        self.server_state.setText(str(error))

    def scan(self) -> None:
        """List what each folder holds, with the detected family (off the GUI thread)."""
        self.found.clear()
        folders = self.folder_list()
        if not folders:
            return
        self.found.addTopLevelItem(QTreeWidgetItem(["Scanning…", ""]))

        def work():
            from studio.engine.catalog import scan_models

            return scan_models([Path(f) for f in folders])

        def done(entries) -> None:
            self.found.clear()
            for entry in entries:
                item = QTreeWidgetItem([entry.path.name, entry.label])
                item.setToolTip(0, str(entry.path))
                item.setToolTip(1, entry.label)
                self.found.addTopLevelItem(item)
            if not entries:
                self.found.addTopLevelItem(QTreeWidgetItem(["No models found", ""]))

        self._background.run(work, done, lambda error: self._scan_failed(str(error)))

    def _scan_failed(self, message: str) -> None:
        self.found.clear()
        self.found.addTopLevelItem(QTreeWidgetItem(["Scan failed", message]))

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a model folder")
        if folder and folder not in self.folder_list():
            self.folders.addItem(folder)
            self.scan()

    def _remove_folder(self) -> None:
        for item in self.folders.selectedItems():
            self.folders.takeItem(self.folders.row(item))
        self.scan()

    def _browse_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.output.text())
        if folder:
            self.output.setText(folder)


def _combo(items, current: str) -> QComboBox:
    combo = QComboBox()
    for value, label in items:
        combo.addItem(label, value)
    combo.setCurrentIndex(max(0, combo.findData(current)))
    return combo
