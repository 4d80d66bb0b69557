"""The prompt panel: a form over the parameters the current workflow exposes, plus the mode
switch and the Generate / Cancel buttons.

It keeps no copy of a parameter: every edit goes to the WorkflowDocument, and the form redraws
from the document's signals, so the node editor and this panel always agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from studio.graph.spec import SEED
from studio.ui.document import WorkflowDocument
from studio.ui.fields import Field, SeedField, make_field
from studio.ui.loras import ModelAddonsBox, attach_completion
from studio.ui.models import ModelField, ModelList

if TYPE_CHECKING:
    from studio.ui.generation import GenerationModel

log = logging.getLogger(__name__)

MODES = (
    ("txt2img", "Text → image"),
    ("img2img", "Image → image"),
    ("inpaint", "Inpaint"),
    ("upscale", "Upscale"),
)
PLACEHOLDERS = {"positive": "What to draw", "negative": "What to avoid"}


class PromptPanel(QWidget):
    """Signals: modeRequested(mode), generateRequested(), cancelRequested(), modelChosen(path)."""

    modeRequested = Signal(str)
    generateRequested = Signal()
    cancelRequested = Signal()
    modelChosen = Signal(str)

    def __init__(
        self,
        document: WorkflowDocument,
        models: ModelList,
        generation: GenerationModel | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.models = models
        # The rules (seed policy, size chosen by hand...) live in the presentation model; a
        # panel made on its own (in tests) gets one of its own state only.
        self.generation = generation if generation is not None else _Rules()
        self.fields: dict[tuple[str, str], Field] = {}
        self._exposed_key: tuple = ()

        self.mode_group = QButtonGroup(self)
        self.mode_group.setExclusive(True)
        modes = QGridLayout()
        modes.setSpacing(2)
        for index, (mode, label) in enumerate(MODES):
            button = QPushButton(label)
            button.setCheckable(True)
            button.setObjectName(f"mode-{mode}")
            button.setProperty("mode", mode)
            button.setMinimumWidth(20)
            button.setStyleSheet("QPushButton:checked { background: #2f5f9a; color: white; }")
            self.mode_group.addButton(button)
            modes.addWidget(button, index // 2, index % 2)
        self.mode_group.buttonClicked.connect(
            lambda button: self.modeRequested.emit(button.property("mode"))
        )

        self.title = QLabel()
        self.title.setStyleSheet("color: palette(placeholder-text);")
        self.form_host = QWidget()
        self.form = QFormLayout(self.form_host)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        # The form sits at the top of the scroll area; the space below it stays empty.
        outer = QWidget()
        stack = QVBoxLayout(outer)
        stack.setContentsMargins(0, 0, 0, 0)
        stack.addWidget(self.form_host)
        stack.addWidget(ModelAddonsBox(document))  # LoRA list, VAE, clip skip
        stack.addStretch(1)
        scroll.setWidget(outer)

        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Run the workflow (Ctrl+Enter)")
        self.generate_button.setMinimumHeight(36)
        self.generate_button.setStyleSheet(
            "QPushButton { background: #3d7fd0; color: white; font-weight: bold; }"
            "QPushButton:disabled { background: palette(mid); }"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running job (Esc)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setMinimumHeight(36)
        self.generate_button.clicked.connect(self.generateRequested)
        self.cancel_button.clicked.connect(self.cancelRequested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 3)
        buttons.addWidget(self.cancel_button, 1)

        layout = QVBoxLayout(self)
        layout.addLayout(modes)
        layout.addWidget(self.title)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)

        document.paramChanged.connect(self._param_changed)
        document.structureChanged.connect(self._structure_changed)
        document.graphReplaced.connect(self.rebuild)
        self.rebuild()

    # -- public --------------------------------------------------------------------------------

    @property
    def size_by_hand(self) -> bool:
        """Once the user sets a size, choosing a model no longer resets it to the model's own."""
        return self.generation.size_by_hand

    @size_by_hand.setter
    def size_by_hand(self, value: bool) -> None:
        self.generation.size_by_hand = value

    def set_mode(self, mode: str) -> None:
        """Show `mode` as the selected one (without asking for a switch); "" selects none."""
        # An exclusive group refuses to uncheck its last button: lift that for a moment.
        self.mode_group.setExclusive(False)
        for button in self.mode_group.buttons():
            button.setChecked(button.property("mode") == mode)
        self.mode_group.setExclusive(True)

    def mode(self) -> str:
        button = self.mode_group.checkedButton()
        return button.property("mode") if button else ""

    def set_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.generate_button.setText("Queue" if busy else "Generate")

    def field(self, node_id: str, param: str) -> Field | None:
        return self.fields.get((node_id, param))

    def seed_fields(self) -> list[tuple[str, str, SeedField]]:
        return [(n, p, f) for (n, p), f in self.fields.items() if isinstance(f, SeedField)]

    # -- building the form ---------------------------------------------------------------------

    def rebuild(self) -> None:
        for old in self.fields.values():
            # It goes with its widget's row; it must stop listening (to the model list) now.
            old.detach()
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields = {}
        graph = self.document.graph
        self.title.setText(graph.name or "Workflow")
        size_row: tuple[str, QHBoxLayout] | None = None
        for exposed in graph.exposed:
            spec = self.document.spec(exposed.node)
            param = spec.param(exposed.param) if spec else None
            if param is None:
                log.warning("Exposed parameter %s.%s does not exist", exposed.node, exposed.param)
                continue
            field = make_field(
                param,
                placeholder=PLACEHOLDERS.get(exposed.node, ""),
                seeds=self.generation,
                models=self.models,
            )
            field.widget.setObjectName(f"{exposed.node}.{exposed.param}")
            attach_completion(field.widget)  # LoRA and embedding names in prompts
            field.set_value(self.document.param_value(exposed.node, exposed.param))
            field.edited.connect(
                lambda value, n=exposed.node, p=exposed.param: self._edited(n, p, value)
            )
            self.fields[(exposed.node, exposed.param)] = field
            label = exposed.label or param.title
            if size_row is not None and size_row[0] == exposed.node and exposed.param == "height":
                # Width and height of one node share a row: "Size  512 × 512".
                size_row[1].addWidget(QLabel("×"))
                size_row[1].addWidget(field.widget, 1)
                size_row = None
                continue
            if exposed.param == "width" and _followed_by_height(graph.exposed, exposed):
                host = QWidget()
                host.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
                row = QHBoxLayout(host)
                row.setContentsMargins(0, 0, 0, 0)
                row.addWidget(field.widget, 1)
                size_row = (exposed.node, row)
                self.form.addRow("Size", host)
                continue
            size_row = None
            self.form.addRow(label, field.widget)
        self._exposed_key = self._exposed_signature()

    def _exposed_signature(self) -> tuple:
        return tuple((e.node, e.param, e.label) for e in self.document.graph.exposed)

    # -- document -> form ------------------------------------------------------------------------

    def _param_changed(self, node_id: str, param: str, value: Any) -> None:
        field = self.fields.get((node_id, param))
        if field is not None:
            field.set_value(value)

    def _structure_changed(self) -> None:
        if self._exposed_signature() != self._exposed_key or any(
            node not in self.document.graph.nodes for node, _ in self.fields
        ):
            self.rebuild()
            return
        for (node_id, param), field in self.fields.items():
            field.set_value(self.document.param_value(node_id, param))

    # -- form -> document ------------------------------------------------------------------------

    def _edited(self, node_id: str, param: str, value: Any) -> None:
        node = self.document.graph.nodes.get(node_id)
        if node is None:
            return
        field = self.fields.get((node_id, param))
        if node.type == "EmptyLatent" and param in ("width", "height"):
            self.size_by_hand = True
        if isinstance(field, ModelField):
            stack = self.document.undo_stack
            stack.beginMacro("Change model")
            self.document.set_param(node_id, param, value)
            # A config folder belongs to the model it was set for.
            if self.document.param_value(node_id, "config"):
                self.document.set_param(node_id, "config", "")
            stack.endMacro()
            self.modelChosen.emit(value)
            return
        if field is not None and field.param.kind == SEED:
            value = int(value)
        self.document.set_param(node_id, param, value)


def _followed_by_height(exposed: list, item) -> bool:
    index = exposed.index(item)
    following = exposed[index + 1] if index + 1 < len(exposed) else None
    return following is not None and (following.node, following.param) == (item.node, "height")


@dataclass
class _Rules:
    """The part of the presentation model a panel reads, for a panel made without one."""

    size_by_hand: bool = False
    random_seed: bool = False
    last_seed: int | None = None

    def next_seed(self, current: int) -> int:
        from studio.graph.spec import random_seed

        seed = random_seed() if self.random_seed else int(current)
        self.last_seed = seed
        return seed
