"""The node graph as a QGraphicsScene: a live view of the WorkflowDocument.

Items are synced incrementally on the document's signals (never rebuilt on a parameter
edit, so a field being typed in keeps its focus). Every edit goes through the document.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsProxyWidget,
    QGraphicsScene,
    QGraphicsSceneContextMenuEvent,
    QGraphicsSceneMouseEvent,
    QInputDialog,
    QMenu,
    QToolTip,
)

from studio.graph import spec as graph_spec
from studio.graph.document import Link
from studio.graph.spec import NodeSpec, Port
from studio.ui.document import WorkflowDocument
from studio.ui.node_editor import style
from studio.ui.node_editor.form import ParamForm
from studio.ui.node_editor.items import Bubble, NodeItem, PortItem
from studio.ui.node_editor.links import LinkDrag, LinkItem

NOTICE_MS = 5000
_WIDE_KINDS = {graph_spec.TEXT, graph_spec.PATH, graph_spec.SEED, graph_spec.ENUM}


class NodeScene(QGraphicsScene):
    """Signals: message(sentence) for the status bar; paletteRequested(scene position)."""

    message = Signal(str)
    paletteRequested = Signal(QPointF)

    def __init__(self, document: WorkflowDocument, parent=None) -> None:
        super().__init__(parent)
        self.document = document
        self.setSceneRect(-20000, -20000, 40000, 40000)
        self.nodes: dict[str, NodeItem] = {}
        self.links: list[LinkItem] = []
        self.notice: Bubble | None = None
        self._running: str | None = None
        self._progress: dict[str, tuple[int, int]] = {}
        self._errors: dict[str, str] = {}
        self._drag: LinkDrag | None = None
        self._press_positions: dict[str, QPointF] = {}
        self._notice_timer = QTimer(self)
        self._notice_timer.setSingleShot(True)
        self._notice_timer.setInterval(NOTICE_MS)
        self._notice_timer.timeout.connect(self.clear_notice)
        document.paramChanged.connect(self._on_param_changed)
        document.structureChanged.connect(self.sync)
        document.graphReplaced.connect(self.rebuild)
        self.rebuild()

    # -- following the document --------------------------------------------------------------

    def rebuild(self) -> None:
        """Drop every item and draw the document's graph afresh (another workflow loaded)."""
        self._cancel_drag()
        for node_id in list(self.nodes):
            self._remove_node(node_id)
        self._running, self._progress, self._errors = None, {}, {}
        self.sync()

    def sync(self) -> None:
        """Bring items in line with the graph: nodes added or gone, positions, titles, links."""
        graph = self.document.graph
        for node_id, item in list(self.nodes.items()):
            node = graph.nodes.get(node_id)
            if node is None or node.type != item.node_type or self._ports_changed(item):
                self._remove_node(node_id)
        for node_id, node in graph.nodes.items():
            item = self.nodes.get(node_id)
            if item is None:
                self._add_node(node_id)
                continue
            if (item.pos().x(), item.pos().y()) != tuple(node.position):
                item.setPos(*node.position)
            item.set_title(self._title(node_id))
            if item.form is not None:
                item.form.refresh()
        self._sync_links()

    def _title(self, node_id: str) -> str:
        node = self.document.graph.nodes[node_id]
        spec = self.document.specs.get(node.type)
        return node.title or (spec.title if spec else f"Unknown: {node.type}")

    def _ports_of(self, node_id: str) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
        spec = self.document.spec(node_id)
        if spec is not None:
            return spec.inputs, spec.outputs
        # An unknown type still shows the ports its links use, so the links stay visible.
        links = self.document.graph.links
        inputs = dict.fromkeys(k.dst_port for k in links if k.dst == node_id)
        outputs = dict.fromkeys(k.src_port for k in links if k.src == node_id)
        return (
            tuple(Port(name, "?") for name in inputs),
            tuple(Port(name, "?") for name in outputs),
        )

    def _ports_changed(self, item: NodeItem) -> bool:
        if item.spec is not None:
            return False
        inputs, outputs = self._ports_of(item.node_id)
        return [p.name for p in inputs] != list(item.inputs) or [p.name for p in outputs] != list(
            item.outputs
        )

    def _add_node(self, node_id: str) -> NodeItem:
        node = self.document.graph.nodes[node_id]
        spec: NodeSpec | None = self.document.specs.get(node.type)
        width = style.NODE_WIDTH
        if spec is not None and (
            len(spec.params) > 4 or any(p.kind in _WIDE_KINDS for p in spec.params)
        ):
            width = style.WIDE_NODE_WIDTH
        form = None
        if spec is not None and spec.params:
            form = ParamForm(self.document, node_id, spec, width - 2 * (style.BODY_PADDING + 2))
        inputs, outputs = self._ports_of(node_id)
        item = NodeItem(
            self, node_id, node.type, self._title(node_id), spec, inputs, outputs, form, width
        )
        item.setPos(*node.position)
        self.addItem(item)
        self.nodes[node_id] = item
        item.set_running(node_id == self._running)
        if node_id in self._progress:
            item.set_progress(*self._progress[node_id])
        if node_id in self._errors:
            item.set_error(self._errors[node_id])
        return item

    def _remove_node(self, node_id: str) -> None:
        item = self.nodes.pop(node_id)
        if self._drag is not None:
            self._cancel_drag()
        self.removeItem(item)

    def _sync_links(self) -> None:
        for link_item in self.links:
            self.removeItem(link_item)
        self.links = []
        for node in self.nodes.values():
            for port in node.ports():
                port.connected = False
                port.update()
        for link in self.document.graph.links:
            source = self.nodes.get(link.src)
            target = self.nodes.get(link.dst)
            out = source.outputs.get(link.src_port) if source else None
            inp = target.inputs.get(link.dst_port) if target else None
            if out is None or inp is None:
                continue
            out.connected = inp.connected = True
            item = LinkItem(link, out, inp)
            self.addItem(item)
            self.links.append(item)

    def _on_param_changed(self, node_id: str, name: str, value: object) -> None:
        item = self.nodes.get(node_id)
        if item is not None and item.form is not None:
            item.form.show_param(name, value)

    def node_moved(self, item: NodeItem) -> None:
        """Called by a node while it moves, so its links follow."""
        for link in self.links:
            if link.source.node is item or link.target.node is item:
                link.update_path()

    # -- run status drawn on nodes -----------------------------------------------------------

    def set_running(self, node_id: str | None) -> None:
        self._running = node_id
        for other_id, item in self.nodes.items():
            item.set_running(other_id == node_id)

    def set_node_progress(self, node_id: str, step: int, total: int) -> None:
        self._progress[node_id] = (step, total)
        if node_id in self.nodes:
            self.nodes[node_id].set_progress(step, total)

    def set_node_error(self, node_id: str | None, message: str) -> None:
        if node_id is None:
            self._errors.clear()
            for item in self.nodes.values():
                item.set_error(None)
            return
        self._errors[node_id] = message
        if node_id in self.nodes:
            self.nodes[node_id].set_error(message)

    def clear_status(self) -> None:
        self.set_running(None)
        self._progress.clear()
        for item in self.nodes.values():
            item.progress = None
            item.update()
        self.set_node_error(None, "")

    # -- linking -----------------------------------------------------------------------------

    def connect_items(self, start: PortItem, end: PortItem) -> str | None:
        """Link two port items (either order); returns why it was refused, or None.

        The mouse drag calls this on release; tests and tools may call it directly.
        """
        if start.is_output == end.is_output:
            return "A link goes from an output to an input."
        out, inp = (start, end) if start.is_output else (end, start)
        return self.document.connect_ports(out.node_id, out.name, inp.node_id, inp.name)

    def drop_link(
        self, start: PortItem, end: PortItem | None, where: QPointF, detached: Link | None = None
    ) -> str | None:
        """Finish a link drag from `start` released over `end` (None: empty space).

        `detached` is the link that was pulled off an input when the drag began: dropping it
        in empty space removes it, dropping it on another input moves it there.
        """
        reason: str | None = None
        if detached is not None:
            if end is None:
                self.document.disconnect_port(detached.dst, detached.dst_port)
                return None
            if not end.is_output and (end.node_id, end.name) == (detached.dst, detached.dst_port):
                return None
            if end.is_output:
                reason = "A link goes from an output to an input."
            else:
                reason = self.document.link_refusal(
                    start.node_id, start.name, end.node_id, end.name
                )
            if reason is None:
                stack = self.document.undo_stack
                stack.beginMacro("Move link")
                self.document.disconnect_port(detached.dst, detached.dst_port)
                self.document.connect_ports(start.node_id, start.name, end.node_id, end.name)
                stack.endMacro()
        elif end is not None and end is not start:
            reason = self.connect_items(start, end)
        if reason is not None:
            self.show_notice(reason, where)
        return reason

    def show_notice(self, text: str, where: QPointF) -> None:
        """Say something next to the cursor for a few seconds (and on the status bar)."""
        self.clear_notice()
        self.notice = Bubble(text, 280, style.NOTICE_BACKGROUND, style.NOTICE_BORDER)
        self.notice.setZValue(20)
        self.notice.setPos(where + QPointF(14, 14))
        self.addItem(self.notice)
        self._notice_timer.start()
        if self.views():
            QToolTip.showText(QCursor.pos(), text, self.views()[0])
        self.message.emit(text)

    def clear_notice(self) -> None:
        if self.notice is None:
            return
        if self.notice.scene() is self:
            self.removeItem(self.notice)
        self.notice = None

    def port_at(self, pos: QPointF) -> PortItem | None:
        for item in self.items(pos):
            if isinstance(item, PortItem) and item.isVisible():
                return item
        return None

    def _all_ports(self) -> list[PortItem]:
        return [port for node in self.nodes.values() for port in node.ports()]

    def _cancel_drag(self) -> None:
        if self._drag is not None:
            self._drag.end()
            self._drag = None

    # -- mouse -------------------------------------------------------------------------------

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and self._drag is None:
            port = self.port_at(event.scenePos())
            if port is not None:
                self._drag = LinkDrag(self, port, self.links, self._all_ports())
                self._drag.follow(event.scenePos(), None)
                event.accept()
                return
        super().mousePressEvent(event)
        self._press_positions = {i.node_id: i.pos() for i in self.selected_nodes()}

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if self._drag is None:
            super().mouseMoveEvent(event)
            return
        self._drag.follow(event.scenePos(), self.port_at(event.scenePos()))
        event.accept()

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if self._drag is not None:
            drag, pos = self._drag, event.scenePos()
            self._cancel_drag()
            detached = drag.detached.link if drag.detached is not None else None
            self.drop_link(drag.anchor, self.port_at(pos), pos, detached)
            event.accept()
            return
        super().mouseReleaseEvent(event)
        moved = {
            node_id: (item.pos().x(), item.pos().y())
            for node_id, item in self.nodes.items()
            if node_id in self._press_positions and item.pos() != self._press_positions[node_id]
        }
        self._press_positions = {}
        if moved:
            self.document.move_nodes(moved)

    def contextMenuEvent(self, event: QGraphicsSceneContextMenuEvent) -> None:  # noqa: N802
        item = self.itemAt(event.scenePos(), self.views()[0].transform()) if self.views() else None
        if isinstance(item, QGraphicsProxyWidget) or _inside_proxy(item):
            super().contextMenuEvent(event)
            return
        node = _node_of(item)
        if node is None:
            self.paletteRequested.emit(event.scenePos())
            event.accept()
            return
        if not node.isSelected():
            self.clearSelection()
            node.setSelected(True)
        menu = QMenu()
        menu.addAction("Rename…", lambda: self.rename_requested(node))
        menu.addAction("Delete", self.delete_selected)
        menu.exec(event.screenPos())
        event.accept()

    # -- selection-wide edits ----------------------------------------------------------------

    def selected_nodes(self) -> list[NodeItem]:
        return [i for i in self.selectedItems() if isinstance(i, NodeItem)]

    def selected_ids(self) -> list[str]:
        return [i.node_id for i in self.selected_nodes()]

    def select_nodes(self, node_ids: list[str]) -> None:
        self.clearSelection()
        for node_id in node_ids:
            if node_id in self.nodes:
                self.nodes[node_id].setSelected(True)

    def delete_selected(self) -> None:
        self.document.remove_nodes(self.selected_ids())

    def rename_requested(self, item: NodeItem) -> None:
        parent = self.views()[0] if self.views() else None
        title, ok = QInputDialog.getText(parent, "Rename node", "Title:", text=item.title)
        if ok and title.strip() and item.node_id in self.document.graph.nodes:
            self.document.set_title(item.node_id, title.strip())


def _node_of(item: QGraphicsItem | None) -> NodeItem | None:
    while item is not None and not isinstance(item, NodeItem):
        item = item.parentItem()
    return item


def _inside_proxy(item: QGraphicsItem | None) -> bool:
    while item is not None:
        if isinstance(item, QGraphicsProxyWidget):
            return True
        item = item.parentItem()
    return False
