"""The parameter rows of one node: a label and a field per parameter, bound to the document."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QContextMenuEvent, QPalette
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QMenu, QWidget

from studio.graph import spec as graph_spec
from studio.graph.spec import NodeSpec
from studio.ui.document import WorkflowDocument
from studio.ui.fields import Field, describe, make_field
from studio.ui.node_editor import style

SHOW_IN_PANEL = "Show in prompt panel"


class ParamForm(QWidget):
    """Edits go straight to the document; `refresh` shows the document's values again."""

    def __init__(
        self, document: WorkflowDocument, node_id: str, spec: NodeSpec, width: int
    ) -> None:
        super().__init__()
        self.document, self.node_id, self.spec = document, node_id, spec
        self.setObjectName("paramForm")
        # Drawn over the node's body, which the node item paints itself.
        self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)
        self.setStyleSheet("#paramForm { background: transparent; }")
        self.setFont(style.ui_font(8.5))
        self.setFixedWidth(width)
        self.fields: dict[str, Field] = {}
        self.labels: dict[str, QLabel] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(3)
        grid.setColumnStretch(1, 1)
        row = 0
        for param in spec.params:
            label = QLabel(param.title)
            palette = label.palette()
            palette.setColor(QPalette.ColorRole.WindowText, style.DIM_TEXT)
            label.setPalette(palette)
            label.setToolTip(describe(param))
            field = make_field(param, compact=True)
            field.edited.connect(lambda value, name=param.name: self._edited(name, value))
            self.labels[param.name], self.fields[param.name] = label, field
            if param.kind == graph_spec.TEXT:
                # Prompts want the full width; the label goes above.
                grid.addWidget(label, row, 0, 1, 2)
                grid.addWidget(field.widget, row + 1, 0, 1, 2)
                row += 2
            elif param.kind == graph_spec.BOOL:
                # A check box reads best with its label after it, as in any dialog.
                row_widget = QWidget()
                row_layout = QHBoxLayout(row_widget)
                row_layout.setContentsMargins(0, 0, 0, 0)
                row_layout.setSpacing(4)
                row_layout.addWidget(field.widget)
                row_layout.addWidget(label, 1)
                grid.addWidget(row_widget, row, 0, 1, 2)
                row += 1
            else:
                label.setMaximumWidth(int(width * 0.66))
                grid.addWidget(label, row, 0)
                grid.addWidget(field.widget, row, 1)
                row += 1
        self.refresh()
        self.setFixedHeight(self.sizeHint().height() if spec.params else 0)

    def _edited(self, name: str, value: Any) -> None:
        if self.node_id in self.document.graph.nodes:
            self.document.set_param(self.node_id, name, value)

    def refresh(self) -> None:
        """Show every parameter's current value and exposed marker."""
        for name in self.fields:
            self.show_param(name, self.document.param_value(self.node_id, name))
        self.refresh_exposed()

    def show_param(self, name: str, value: Any) -> None:
        field = self.fields.get(name)
        if field is not None:
            field.set_value(value)

    def refresh_exposed(self) -> None:
        for name, label in self.labels.items():
            title = self.spec.param(name).title
            if self.document.is_exposed(self.node_id, name):
                mark = style.EXPOSED_MARK.name()
                label.setText(f'<span style="color:{mark}">●</span> {title}')
                label.setToolTip(f"Shown in the prompt panel. {describe(self.spec.param(name))}")
            else:
                label.setText(title)
                label.setToolTip(describe(self.spec.param(name)))
            # Rich text under-reports its width inside a proxy; ask for the room it needs.
            needed = label.fontMetrics().horizontalAdvance(f"● {title}") + 14
            label.setMinimumWidth(min(needed, label.maximumWidth()))

    def param_at(self, widget: QWidget | None) -> str | None:
        """The parameter whose row holds `widget` (a label, a field or part of one)."""
        while widget is not None and widget is not self:
            for name in self.fields:
                if widget is self.fields[name].widget or widget is self.labels[name]:
                    return name
            widget = widget.parentWidget()
        return None

    def exposure_menu(self, name: str) -> QMenu:
        """The right-click menu of a parameter row: show it in the prompt panel or not."""
        menu = QMenu(self)
        action = QAction(SHOW_IN_PANEL, menu)
        action.setCheckable(True)
        action.setChecked(self.document.is_exposed(self.node_id, name))
        label = self.spec.param(name).title
        action.toggled.connect(
            lambda on: self.document.set_exposed(self.node_id, name, on, label if on else "")
        )
        menu.addAction(action)
        return menu

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 (Qt's name)
        name = self.param_at(self.childAt(event.pos()))
        if name is None:
            event.ignore()
            return
        self.exposure_menu(name).exec(event.globalPos())

