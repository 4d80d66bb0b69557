"""The searchable list of node types a user adds nodes from (Tab, right-click, toolbar)."""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QFrame, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from studio.graph.spec import NodeSpec

_TYPE_ROLE = Qt.ItemDataRole.UserRole


class NodePalette(QFrame):
    """A popup: a filter field over node titles grouped by category. chosen(node_type)."""

    chosen = Signal(str)

    def __init__(self, specs: Mapping[str, NodeSpec], parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.resize(280, 380)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Search nodes…")
        self.filter.setClearButtonEnabled(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(False)
        self.tree.setIndentation(12)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)

        groups: dict[str, QTreeWidgetItem] = {}
        for spec in sorted(specs.values(), key=lambda s: (s.category or "Other", s.title)):
            category = spec.category or "Other"
            group = groups.get(category)
            if group is None:
                group = QTreeWidgetItem(self.tree, [category])
                group.setFlags(Qt.ItemFlag.ItemIsEnabled)
                font = group.font(0)
                font.setBold(True)
                group.setFont(0, font)
                groups[category] = group
            item = QTreeWidgetItem(group, [spec.title])
            item.setData(0, _TYPE_ROLE, spec.type)
            words = " ".join((spec.title, spec.type, category, spec.description)).lower()
            item.setData(0, _TYPE_ROLE + 1, words)
            if spec.description:
                item.setToolTip(0, spec.description)
        self.tree.expandAll()
        self.filter.textChanged.connect(self._apply_filter)
        self.filter.returnPressed.connect(self.choose_current)
        self.tree.itemActivated.connect(lambda item, _column: self._choose(item))

    def popup(self, global_pos: QPoint) -> None:
        """Show at `global_pos` with an empty filter and the keyboard in it."""
        self.filter.clear()
        self._apply_filter("")
        self.move(global_pos)
        self.show()
        self.filter.setFocus()

    def node_items(self) -> list[QTreeWidgetItem]:
        """The visible node entries, in the order shown."""
        found = []
        for index in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(index)
            if group.isHidden():
                continue
            found += [
                group.child(i) for i in range(group.childCount()) if not group.child(i).isHidden()
            ]
        return found

    def _apply_filter(self, text: str) -> None:
        words = text.lower().split()
        for index in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(index)
            shown = 0
            for i in range(group.childCount()):
                child = group.child(i)
                haystack = child.data(0, _TYPE_ROLE + 1)
                hide = not all(word in haystack for word in words)
                child.setHidden(hide)
                shown += not hide
            group.setHidden(shown == 0)
        visible = self.node_items()
        self.tree.setCurrentItem(visible[0] if visible else None)

    def _move(self, step: int) -> None:
        visible = self.node_items()
        if not visible:
            return
        current = self.tree.currentItem()
        index = visible.index(current) if current in visible else -1
        self.tree.setCurrentItem(visible[max(0, min(len(visible) - 1, index + step))])

    def choose_current(self) -> None:
        self._choose(self.tree.currentItem())

    def _choose(self, item: QTreeWidgetItem | None) -> None:
        node_type = item.data(0, _TYPE_ROLE) if item is not None else None
        if node_type:
            self.hide()
            self.chosen.emit(node_type)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        # The filter field keeps the keyboard (Enter there chooses); arrows still walk the list.
        if event.key() in (Qt.Key.Key_Down, Qt.Key.Key_Up):
            self._move(1 if event.key() == Qt.Key.Key_Down else -1)
            return
        super().keyPressEvent(event)
