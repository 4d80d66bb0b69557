"""The generation region's frame on the canvas: drawn over the picture, moved and resized by
dragging its inside or its handles with the Region tool.

The frame shows a rect in image pixels; the window keeps it equal to the workflow's Region
node, so what the frame shows is what the next job works on.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

HANDLE_PIXELS = 7.0  # screen pixels: half the size of a resize handle
MIN_SIDE = 8  # image pixels
_Z_REGION = 2500.0  # over the layers, mask and staged results; under the live preview

# Handle name -> which sides it moves (left, top, right, bottom).
_HANDLES = {
    "top_left": (True, True, False, False),
    "top": (False, True, False, False),
    "top_right": (False, True, True, False),
    "right": (False, False, True, False),
    "bottom_right": (False, False, True, True),
    "bottom": (False, False, False, True),
    "bottom_left": (True, False, False, True),
    "left": (True, False, False, False),
}


def _handle_points(rect: QRectF) -> dict[str, QPointF]:
    c = rect.center()
    return {
        "top_left": rect.topLeft(),
        "top": QPointF(c.x(), rect.top()),
        "top_right": rect.topRight(),
        "right": QPointF(rect.right(), c.y()),
        "bottom_right": rect.bottomRight(),
        "bottom": QPointF(c.x(), rect.bottom()),
        "bottom_left": rect.bottomLeft(),
        "left": QPointF(rect.left(), c.y()),
    }


class RegionFrame(QGraphicsItem):
    """A dashed frame with eight handles (the handles only while the Region tool is active)."""

    def __init__(self) -> None:
        super().__init__()
        self.rect = QRect()
        self.editing = False  # the Region tool is active: show handles
        self.used = True  # the workflow has a region (the upscale one has none)
        self.setZValue(_Z_REGION)
        self.setVisible(False)

    def set_rect(self, rect: QRect) -> None:
        self.prepareGeometryChange()
        self.rect = QRect(rect)
        self.setVisible(self.used and not rect.isEmpty())
        self.update()

    def set_used(self, used: bool) -> None:
        self.used = used
        self.setVisible(used and not self.rect.isEmpty())

    def set_editing(self, editing: bool) -> None:
        self.editing = editing
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt's name)
        # Generous: the handles are a fixed size on screen, whatever the zoom.
        scene = self.scene()
        view_scale = 1.0
        if scene is not None and scene.views():
            view_scale = max(1e-3, scene.views()[0].transform().m11())
        grow = (HANDLE_PIXELS + 2) / view_scale
        return QRectF(self.rect).adjusted(-grow, -grow, grow, grow)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        if self.rect.isEmpty():
            return
        painter.save()
        frame = painter.worldTransform().mapRect(QRectF(self.rect))
        painter.resetTransform()  # crisp lines in screen pixels at any zoom
        dark, light = QPen(QColor(0, 0, 0, 200), 1.0), QPen(QColor(255, 210, 60), 1.0)
        light.setStyle(Qt.PenStyle.DashLine)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(dark)
        painter.drawRect(frame.adjusted(-1, -1, 1, 1))
        painter.setPen(light)
        painter.drawRect(frame)
        if self.editing:
            painter.setPen(QPen(QColor(0, 0, 0, 220), 1.0))
            painter.setBrush(QColor(255, 210, 60))
            half = HANDLE_PIXELS / 2 + 1
            for point in _handle_points(frame).values():
                painter.drawRect(QRectF(point.x() - half, point.y() - half, 2 * half, 2 * half))
        painter.restore()


class RegionDrag:
    """One press..release with the Region tool: move the frame, resize it, or draw a new one."""

    def __init__(self, rect: QRect, bounds: QRect, start: QPointF, zoom: float) -> None:
        self.start_rect = QRect(rect)
        self.bounds = QRect(bounds)
        self.start = QPointF(start)
        self.rect = QRect(rect)
        self.part = self._hit(QRectF(rect), start, HANDLE_PIXELS / max(zoom, 1e-3))

    @staticmethod
    def _hit(rect: QRectF, point: QPointF, reach: float) -> str:
        if not rect.isEmpty():
            for name, handle in _handle_points(rect).items():
                if abs(handle.x() - point.x()) <= reach and abs(handle.y() - point.y()) <= reach:
                    return name
            if rect.contains(point):
                return "move"
        return "new"

    def move_to(self, point: QPointF) -> QRect:
        dx, dy = point.x() - self.start.x(), point.y() - self.start.y()
        r, b = self.start_rect, self.bounds
        if self.part == "new":
            x0, y0 = self.start.x(), self.start.y()
            rect = QRectF(QPointF(min(x0, point.x()), min(y0, point.y())),
                          QPointF(max(x0, point.x()), max(y0, point.y()))).toRect()
            self.rect = rect.intersected(b)
        elif self.part == "move":
            x = int(round(min(max(b.left(), r.x() + dx), b.right() + 1 - r.width())))
            y = int(round(min(max(b.top(), r.y() + dy), b.bottom() + 1 - r.height())))
            self.rect = QRect(x, y, r.width(), r.height())
        else:
            left, top, right, bottom = r.left(), r.top(), r.right() + 1, r.bottom() + 1
            moves = _HANDLES[self.part]
            if moves[0]:
                left = int(round(min(max(b.left(), left + dx), right - MIN_SIDE)))
            if moves[1]:
                top = int(round(min(max(b.top(), top + dy), bottom - MIN_SIDE)))
            if moves[2]:
                right = int(round(max(min(b.right() + 1, right + dx), left + MIN_SIDE)))
            if moves[3]:
                bottom = int(round(max(min(b.bottom() + 1, bottom + dy), top + MIN_SIDE)))
            self.rect = QRect(left, top, right - left, bottom - top)
        return self.rect

    def finished(self) -> QRect | None:
        """The new rect, or None when the drag changed nothing or drew a rect too small."""
        if self.rect == self.start_rect:
            return None
        if self.rect.width() < MIN_SIDE or self.rect.height() < MIN_SIDE:
            return None
        return self.rect
