"""Graphics items of the node editor: a node box with its typed ports, and text bubbles."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsProxyWidget,
    QGraphicsSceneMouseEvent,
    QGraphicsTextItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from studio.graph.spec import NodeSpec, Port
from studio.ui.node_editor import style
from studio.ui.node_editor.form import ParamForm


class PortItem(QGraphicsItem):
    """One input (left edge) or output (right edge) of a node; links and drags start here."""

    def __init__(self, node: NodeItem, port: Port, is_output: bool) -> None:
        super().__init__(node)
        self.node, self.port, self.is_output = node, port, is_output
        self.connected = False
        self.highlight: str | None = None  # "ok" / "no" while a link is dragged
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        kind = "Output" if is_output else "Input"
        optional = " (optional)" if port.optional else ""
        self.setToolTip(f"{kind} {port.title}: {port.type}{optional}")

    @property
    def node_id(self) -> str:
        return self.node.node_id

    @property
    def name(self) -> str:
        return self.port.name

    @property
    def type(self) -> str:  # noqa: A003 (the port's type name, not Python's)
        return self.port.type

    def anchor(self) -> QPointF:
        """Where links attach, in scene coordinates."""
        return self.mapToScene(QPointF(0, 0))

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt's name)
        # Larger than the dot so the port is easy to hit.
        r = style.PORT_RADIUS + 5
        return QRectF(-r, -r, 2 * r, 2 * r)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = style.port_color(self.port.type)
        r = style.PORT_RADIUS
        if self.highlight == "ok":
            painter.setPen(QPen(style.NODE_SELECTED, 2))
            r += 1.5
        elif self.highlight == "no":
            color = QColor(color)
            color.setAlpha(70)
            painter.setPen(QPen(color.darker(150), 1.2))
        else:
            painter.setPen(QPen(color.darker(160), 1.2))
        filled = self.connected or self.highlight == "ok"
        painter.setBrush(QBrush(color if filled else style.NODE_BODY))
        if not filled:
            painter.setPen(QPen(color, 2))
        painter.drawEllipse(QPointF(0, 0), r, r)


class Bubble(QGraphicsTextItem):
    """Wrapped text on a rounded background: a node's error, or why a link was refused."""

    def __init__(
        self,
        text: str,
        width: float,
        background: QColor,
        border: QColor,
        parent: QGraphicsItem | None = None,
    ) -> None:
        super().__init__(parent)
        self.background, self.border = background, border
        self.setDefaultTextColor(style.TEXT)
        self.setFont(style.ui_font(8.5))
        self.setTextWidth(width)
        self.setPlainText(text)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(self.border, 1.2))
        painter.setBrush(self.background)
        painter.drawRoundedRect(self.boundingRect().adjusted(0.5, 0.5, -0.5, -0.5), 4, 4)
        super().paint(painter, option, widget)


class NodeItem(QGraphicsItem):
    """A node: title bar, one row per input/output pair, then its parameter fields."""

    def __init__(
        self,
        scene_owner,
        node_id: str,
        node_type: str,
        title: str,
        spec: NodeSpec | None,
        inputs: tuple[Port, ...],
        outputs: tuple[Port, ...],
        form: ParamForm | None,
        width: int,
    ) -> None:
        super().__init__()
        self.owner = scene_owner  # the NodeScene; told when this node moves
        self.node_id, self.node_type, self.spec = node_id, node_type, spec
        self.title = title
        self.width = width
        self.running = False
        self.progress: tuple[int, int] | None = None
        self.error_bubble: Bubble | None = None
        self.setFlags(
            QGraphicsItem.GraphicsItemFlag.ItemIsMovable
            | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
            | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges
        )
        self.setAcceptHoverEvents(True)
        if spec is not None and spec.description:
            self.setToolTip(spec.description)
        elif spec is None:
            self.setToolTip(f'"{node_type}" is not a node type this Studio knows.')

        rows = max(len(inputs), len(outputs))
        top = style.TITLE_HEIGHT + style.BODY_PADDING
        self.inputs: dict[str, PortItem] = {}
        self.outputs: dict[str, PortItem] = {}
        for index, port in enumerate(inputs):
            item = PortItem(self, port, is_output=False)
            item.setPos(0, top + (index + 0.5) * style.PORT_ROW_HEIGHT)
            self.inputs[port.name] = item
        for index, port in enumerate(outputs):
            item = PortItem(self, port, is_output=True)
            item.setPos(width, top + (index + 0.5) * style.PORT_ROW_HEIGHT)
            self.outputs[port.name] = item
        self._rows_top = top
        body = top + rows * style.PORT_ROW_HEIGHT
        self.form = form
        self.proxy: QGraphicsProxyWidget | None = None
        if form is not None and form.height() > 0:
            body += style.BODY_PADDING
            self.proxy = QGraphicsProxyWidget(self)
            self.proxy.setWidget(form)
            self.proxy.setPos(style.BODY_PADDING + 2, body)
            body += form.height()
        self.height = body + style.BODY_PADDING + 2

    # -- state drawn on the node -------------------------------------------------------------

    def set_title(self, title: str) -> None:
        if title != self.title:
            self.title = title
            self.update()

    def set_running(self, running: bool) -> None:
        self.running = running
        self.update()

    def set_progress(self, step: int, total: int) -> None:
        self.progress = (step, total) if total > 0 else None
        self.update()

    def set_error(self, message: str | None) -> None:
        if self.error_bubble is not None:
            if self.scene() is not None:
                self.scene().removeItem(self.error_bubble)
            self.error_bubble = None
        if message:
            self.error_bubble = Bubble(
                message, self.width, style.ERROR_BACKGROUND, style.NODE_ERROR, self
            )
            self.error_bubble.setPos(0, self.height + 4)
            self.error_bubble.setZValue(5)
        self.update()

    @property
    def error(self) -> str | None:
        return self.error_bubble.toPlainText() if self.error_bubble is not None else None

    def ports(self) -> list[PortItem]:
        return [*self.inputs.values(), *self.outputs.values()]

    # -- drawing -----------------------------------------------------------------------------

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt's name)
        return QRectF(-2, -2, self.width + 4, self.height + 4)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(self._box(), style.CORNER_RADIUS, style.CORNER_RADIUS)
        return path

    def _box(self) -> QRectF:
        return QRectF(0, 0, self.width, self.height)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        box = self._box()
        radius = style.CORNER_RADIUS
        body = QPainterPath()
        body.addRoundedRect(box, radius, radius)
        painter.fillPath(body, style.NODE_BODY)

        title_rect = QRectF(0, 0, self.width, style.TITLE_HEIGHT)
        title_path = QPainterPath()
        title_path.addRect(title_rect)
        color = style.title_color(self.spec.category) if self.spec else style.NODE_ERROR.darker(200)
        painter.fillPath(body.intersected(title_path), color)

        painter.setFont(style.ui_font(9.5, bold=True))
        painter.setPen(style.TEXT)
        text_rect = title_rect.adjusted(9, 0, -9, 0)
        status = ""
        if self.progress is not None:
            status = f"{self.progress[0]}/{self.progress[1]}"
        metrics = QFontMetricsF(painter.font())
        if status:
            text_rect.setRight(text_rect.right() - metrics.horizontalAdvance(status) - 6)
        title = metrics.elidedText(self.title, Qt.TextElideMode.ElideRight, text_rect.width())
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, title
        )
        if status:
            painter.setFont(style.ui_font(8.5))
            painter.setPen(style.NODE_RUNNING)
            painter.drawText(
                title_rect.adjusted(0, 0, -9, 0),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                status,
            )
        if self.progress is not None:
            step, total = self.progress
            bar = QRectF(0, style.TITLE_HEIGHT, self.width, style.PROGRESS_HEIGHT)
            painter.fillRect(bar, style.NODE_BODY.darker(140))
            painter.fillRect(
                QRectF(bar.left(), bar.top(), bar.width() * min(1.0, step / total), bar.height()),
                style.NODE_RUNNING,
            )

        self._paint_port_labels(painter)

        if self.error_bubble is not None:
            pen = QPen(style.NODE_ERROR, 2.5)
        elif self.running:
            pen = QPen(style.NODE_RUNNING, 2.5)
        elif self.isSelected():
            pen = QPen(style.NODE_SELECTED, 1.6)
        else:
            pen = QPen(style.NODE_BORDER, 1)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(box, radius, radius)

    def _paint_port_labels(self, painter: QPainter) -> None:
        painter.setFont(style.ui_font(8.5))
        painter.setPen(style.DIM_TEXT)
        metrics = QFontMetricsF(painter.font())
        half = self.width / 2 - 14
        for items, align, left in (
            (self.inputs, Qt.AlignmentFlag.AlignLeft, 12.0),
            (self.outputs, Qt.AlignmentFlag.AlignRight, self.width / 2 + 2),
        ):
            for item in items.values():
                y = item.pos().y() - style.PORT_ROW_HEIGHT / 2
                rect = QRectF(left, y, half, style.PORT_ROW_HEIGHT)
                text = metrics.elidedText(item.port.title, Qt.TextElideMode.ElideRight, half)
                painter.drawText(rect, align | Qt.AlignmentFlag.AlignVCenter, text)

    # -- behaviour ---------------------------------------------------------------------------

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value):  # noqa: N802
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            self.owner.node_moved(self)
        elif change == QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged:
            self.setZValue(1 if self.isSelected() else 0)
        return super().itemChange(change, value)

    def mouseDoubleClickEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if event.pos().y() <= style.TITLE_HEIGHT:
            self.owner.rename_requested(self)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)
