"""Links between ports: bezier curves in the colour of their type, and the drag that makes one."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsScene

from studio.graph.document import Link
from studio.ui.node_editor import style
from studio.ui.node_editor.items import PortItem


def curve(start: QPointF, end: QPointF) -> QPainterPath:
    """A horizontal S-curve from an output (start) to an input (end)."""
    dx = max(40.0, abs(end.x() - start.x()) * 0.5)
    path = QPainterPath(start)
    path.cubicTo(QPointF(start.x() + dx, start.y()), QPointF(end.x() - dx, end.y()), end)
    return path


class LinkItem(QGraphicsPathItem):
    """A link of the document, between an output port item and an input port item."""

    def __init__(self, link: Link, source: PortItem, target: PortItem) -> None:
        super().__init__()
        self.link, self.source, self.target = link, source, target
        self.setZValue(-1)
        pen = QPen(style.port_color(source.type), 2.4)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        self.setPen(pen)
        self.setToolTip(
            f"{source.node.title}: {source.port.title} → {target.node.title}: {target.port.title}"
            f" ({source.type})"
        )
        self.update_path()

    def update_path(self) -> None:
        self.setPath(curve(self.source.anchor(), self.target.anchor()))


class DragLink(QGraphicsPathItem):
    """The provisional curve that follows the cursor while a link is being dragged."""

    def __init__(self, anchor: PortItem) -> None:
        super().__init__()
        self.anchor = anchor
        self.setZValue(10)
        color = QColor(style.port_color(anchor.type))
        pen = QPen(color, 2.2, Qt.PenStyle.DashLine)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        self.setPen(pen)
        self.follow(anchor.anchor())

    def follow(self, cursor: QPointF) -> None:
        start = self.anchor.anchor()
        if self.anchor.is_output:
            self.setPath(curve(start, cursor))
        else:
            self.setPath(curve(cursor, start))


class LinkDrag:
    """A link being dragged: the provisional curve, and ports it cannot join dimmed.

    Pulling on a connected input picks its link up from the source end (the link is hidden
    until the drag ends); `detached` is that link.
    """

    def __init__(
        self, scene: QGraphicsScene, port: PortItem, links: list[LinkItem], ports: list[PortItem]
    ) -> None:
        self.scene, self.ports = scene, ports
        self.detached: LinkItem | None = None
        anchor = port
        if not port.is_output:
            self.detached = next((k for k in links if k.target is port), None)
            if self.detached is not None:
                self.detached.hide()
                anchor = self.detached.source
        self.anchor = anchor
        self.curve = DragLink(anchor)
        scene.addItem(self.curve)
        for other in ports:
            fits = (
                other.is_output != anchor.is_output
                and other.type == anchor.type
                and other.node is not anchor.node
            )
            other.highlight = None if fits or other is anchor else "no"
            other.update()

    def follow(self, cursor: QPointF, hovered: PortItem | None) -> None:
        self.curve.follow(cursor)
        for port in self.ports:
            if port.highlight == "no":
                continue
            wanted = "ok" if port is hovered else None
            if port.highlight != wanted:
                port.highlight = wanted
                port.update()

    def end(self) -> None:
        """Remove the curve and undo the highlighting (the document decides the rest)."""
        if self.curve.scene() is self.scene:
            self.scene.removeItem(self.curve)
        if self.detached is not None and self.detached.scene() is self.scene:
            self.detached.show()
        for port in self.ports:
            port.highlight = None
            port.update()
