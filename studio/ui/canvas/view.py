"""The canvas viewport: zoom and pan, mouse drags turned into strokes, the brush outline,
the empty-state hint and file drops. What it draws is the PictureScene's business."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsView,
    QWidget,
)

from studio.ui.canvas.layers import Picture
from studio.ui.canvas.mask import Stroke
from studio.ui.canvas.region import RegionDrag, RegionFrame
from studio.ui.canvas.scene import PictureScene
from studio.ui.canvas.selection import SHAPES, shape_path

TOOLS = ("brush", "eraser", "pan", "region", *SHAPES)

BACKGROUND = QColor(35, 35, 38)
HINT_COLOUR = QColor(150, 150, 155)
MIN_ZOOM, MAX_ZOOM = 0.01, 64.0
WHEEL_STEP = 1.25  # zoom factor per wheel notch


class CanvasView(QGraphicsView):
    """Zoom, pan and brush input over a Picture, plus staged-result and preview overlays.

    Signals: strokeFinished(MaskPatch) when a press..release changed the mask,
    zoomChanged(float), filesDropped(list[str]) for local files, imageDropped(QImage) for
    raw image data (from a browser, say).
    """

    strokeFinished = Signal(object)
    selectionFinished = Signal(object, str)  # QPainterPath in image pixels, operation
    regionEdited = Signal(QRect)
    zoomChanged = Signal(float)
    filesDropped = Signal(list)
    imageDropped = Signal(QImage)

    def __init__(self, picture: Picture, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.picture = picture
        self.tool = "brush"
        self.brush_size = 64
        self.brush_hardness = 0.8
        self._scene = PictureScene(picture, self)
        self.setScene(self._scene)
        self._stroke: Stroke | None = None
        self._pan_from: QPoint | None = None
        self._space_held = False
        self._cursor_pos: QPointF | None = None  # scene position of the brush outline
        self._cursor_rect = QRect()  # viewport area the outline was last drawn in
        self._fitted = True  # keep fitting on resize until the user zooms or pans
        self.selection_operation = "replace"  # what a selection does without modifier keys
        self._shape_points: list[QPointF] | None = None  # a selection being drawn
        self._shape_operation = "replace"
        self._region_drag: RegionDrag | None = None
        self._mask_outline = QPainterPath()
        self.region_frame = RegionFrame()
        self._scene.addItem(self.region_frame)

        self.setRenderHints(QPainter.RenderHint.SmoothPixmapTransform)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setBackgroundBrush(BACKGROUND)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)

        self._scene.contentChanged.connect(self._content_changed)
        # A stroke must not outlive the mask it started on (an image opened or a result
        # accepted mid-drag): drop it rather than write old pixels into the new mask.
        picture.layersChanged.connect(self._abandon_stroke)
        self._update_cursor()

    def content_rect(self) -> QRectF:
        return self._scene.content_rect()

    def staging(self) -> bool:
        return self._scene.staging()

    def show_staged(self, pixmap: QPixmap | None, rect: QRectF | None = None) -> None:
        """Show a staged result over the picture (None hides it); painting pauses meanwhile."""
        self._scene.show_staged(pixmap, rect)
        self._update_cursor()

    def show_preview(self, pixmap: QPixmap | None, rect: QRectF | None = None) -> None:
        """Show a live preview stretched over `rect` (default: the picture); None hides it."""
        self._scene.show_preview(pixmap, rect)

    def _content_changed(self) -> None:
        # A different size means a different picture: show all of it.
        self.fit()
        self._update_cursor()
        self.viewport().update()

    # -- zoom and pan ---------------------------------------------------------------------

    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom to `factor`, keeping the scene point under `anchor` (viewport pixels) in place."""
        factor = min(MAX_ZOOM, max(MIN_ZOOM, factor))
        anchor = QPointF(self.viewport().rect().center()) if anchor is None else anchor
        before = self._to_scene(anchor)
        self.setTransform(QTransform.fromScale(factor, factor))
        shift = (self._to_scene(anchor) - before) * factor
        self._scroll_by(-shift.x(), -shift.y())
        self._fitted = False
        self._cursor_moved()
        self.zoomChanged.emit(factor)

    def fit(self) -> None:
        """Show the whole image, as large as the view allows."""
        rect = self.content_rect()
        self._fitted = True
        if rect.isEmpty():
            return
        view = self.viewport().rect()
        margin = 16
        factor = min(
            (view.width() - margin) / rect.width(), (view.height() - margin) / rect.height()
        )
        self.setTransform(QTransform.fromScale(max(MIN_ZOOM, factor), max(MIN_ZOOM, factor)))
        self.centerOn(rect.center())
        self._cursor_moved()
        self.zoomChanged.emit(self.zoom())

    def actual_size(self) -> None:
        """One image pixel per screen pixel, centred on what is in the middle now."""
        centre = self._to_scene(QPointF(self.viewport().rect().center()))
        self.setTransform(QTransform())
        self.centerOn(centre)
        self._fitted = False
        self._cursor_moved()
        self.zoomChanged.emit(1.0)

    def _scroll_by(self, dx: float, dy: float) -> None:
        horizontal, vertical = self.horizontalScrollBar(), self.verticalScrollBar()
        horizontal.setValue(horizontal.value() + round(dx))
        vertical.setValue(vertical.value() + round(dy))

    def _to_scene(self, point: QPointF) -> QPointF:
        # mapToScene only takes whole pixels; strokes want the sub-pixel position.
        return self.viewportTransform().inverted()[0].map(point)

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta == 0:
            event.ignore()
            return
        self.set_zoom(self.zoom() * WHEEL_STEP ** (delta / 120.0), event.position())
        event.accept()

    # -- tools and mouse ------------------------------------------------------------------

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown canvas tool {tool!r}: use one of {', '.join(TOOLS)}")
        self.tool = tool
        self.region_frame.set_editing(tool == "region")
        self._update_cursor()

    def set_region_rect(self, rect: QRect) -> None:
        """Show the generation region's frame (an empty rect hides it)."""
        self.region_frame.set_rect(rect)

    def set_mask_outline(self, path: QPainterPath) -> None:
        """The mask's edge, drawn as a thin line over everything so it shows while painting."""
        self._mask_outline = path
        self.viewport().update()

    def set_brush(self, size: float, hardness: float) -> None:
        self.brush_size = size
        self.brush_hardness = hardness
        self._cursor_moved()

    def can_paint(self) -> bool:
        return self.picture.mask is not None and not self.staging()

    def _painting_tool(self) -> bool:
        return self.tool in ("brush", "eraser") and not self._space_held and self.can_paint()

    def _update_cursor(self) -> None:
        if self._pan_from is not None:
            shape = Qt.CursorShape.ClosedHandCursor
        elif self.tool == "pan" or self._space_held:
            shape = Qt.CursorShape.OpenHandCursor
        elif self._painting_tool():
            shape = Qt.CursorShape.BlankCursor  # the brush outline is the cursor
        elif self.tool in SHAPES or self.tool == "region":
            shape = Qt.CursorShape.CrossCursor
        else:
            shape = Qt.CursorShape.ArrowCursor
        self.viewport().setCursor(shape)
        self._cursor_moved()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and (self.tool == "pan" or self._space_held)
        ):
            self._pan_from = event.position().toPoint()
            self._update_cursor()
        elif button == Qt.MouseButton.LeftButton and self._painting_tool() and self._stroke is None:
            self._stroke = Stroke(
                self.picture.mask, self.brush_size, self.brush_hardness, self.tool == "eraser"
            )
            self._paint_to(event.position())
        elif button == Qt.MouseButton.LeftButton and self.can_paint() and self.tool in SHAPES:
            self._shape_points = [self._to_scene(event.position())]
            modifiers = event.modifiers()
            if modifiers & Qt.KeyboardModifier.ShiftModifier:
                self._shape_operation = "add"
            elif modifiers & Qt.KeyboardModifier.AltModifier:
                self._shape_operation = "subtract"
            else:
                self._shape_operation = self.selection_operation
        elif (
            button == Qt.MouseButton.LeftButton
            and self.tool == "region"
            and self.picture.size is not None
        ):
            frame = self.region_frame.rect if self.region_frame.isVisible() else QRect()
            self._region_drag = RegionDrag(
                frame, self.picture.rect(), self._to_scene(event.position()), self.zoom()
            )
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None:
            now = event.position().toPoint()
            delta = now - self._pan_from
            self._pan_from = now
            self._scroll_by(-delta.x(), -delta.y())
            self._fitted = False
        elif self._stroke is not None:
            self._paint_to(event.position())
        elif self._shape_points is not None:
            point = self._to_scene(event.position())
            if self.tool == "lasso":
                self._shape_points.append(point)
            else:
                self._shape_points[1:] = [point]
            self.viewport().update()
        elif self._region_drag is not None:
            self.region_frame.set_rect(self._region_drag.move_to(self._to_scene(event.position())))
        self._cursor_pos = self._to_scene(event.position())
        self._cursor_moved()
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None and event.button() in (
            Qt.MouseButton.MiddleButton,
            Qt.MouseButton.LeftButton,
        ):
            self._pan_from = None
            self._update_cursor()
        elif self._stroke is not None and event.button() == Qt.MouseButton.LeftButton:
            self._paint_to(event.position())
            self.finish_stroke()
        elif self._shape_points is not None and event.button() == Qt.MouseButton.LeftButton:
            points, self._shape_points = self._shape_points, None
            path = shape_path(self.tool, points)
            if not path.isEmpty() and not path.boundingRect().isEmpty():
                self.selectionFinished.emit(path, self._shape_operation)
            self.viewport().update()
        elif self._region_drag is not None and event.button() == Qt.MouseButton.LeftButton:
            drag, self._region_drag = self._region_drag, None
            drag.move_to(self._to_scene(event.position()))
            rect = drag.finished()
            self.region_frame.set_rect(drag.start_rect if rect is None else rect)
            if rect is not None:
                self.regionEdited.emit(rect)
        event.accept()

    def _paint_to(self, position: QPointF) -> None:
        changed = self._stroke.add(self._to_scene(position))
        self._scene.update_mask(changed)

    def _abandon_stroke(self) -> None:
        self._stroke = None

    def finish_stroke(self) -> None:
        """End the stroke in progress (if any) and hand it out as one undo step."""
        stroke, self._stroke = self._stroke, None
        patch = None if stroke is None else stroke.finish()
        if patch is not None:
            self.strokeFinished.emit(patch)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fitted:
            self.fit()

    def leaveEvent(self, event) -> None:
        self._cursor_pos = None
        self._cursor_moved()
        super().leaveEvent(event)

    def focusOutEvent(self, event) -> None:
        self._space_held = False
        self._update_cursor()
        super().focusOutEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = True
            self._update_cursor()
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = False
            self._update_cursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    # -- brush outline and empty-state hint -----------------------------------------------

    def _outline_rect(self) -> QRect:
        if self._cursor_pos is None or not self._painting_tool():
            return QRect()
        radius = max(self.brush_size / 2.0 * self.zoom(), 3.0)
        centre = self.viewportTransform().map(self._cursor_pos)
        return QRectF(
            centre.x() - radius, centre.y() - radius, 2 * radius, 2 * radius
        ).toAlignedRect()

    def _cursor_moved(self) -> None:
        rect = self._outline_rect()
        if rect != self._cursor_rect:
            self.viewport().update(self._cursor_rect.adjusted(-3, -3, 3, 3))
            self.viewport().update(rect.adjusted(-3, -3, 3, 3))
            self._cursor_rect = rect

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        self._draw_selection_lines(painter)
        outline = QRectF(self._outline_rect())
        if outline.isEmpty():
            return
        painter.save()
        painter.resetTransform()  # draw in viewport pixels: a crisp 1 px ring at any zoom
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for colour, grow in ((QColor(0, 0, 0, 160), 1.0), (QColor(255, 255, 255, 220), 0.0)):
            painter.setPen(QPen(colour, 1.0))
            painter.drawEllipse(outline.adjusted(-grow, -grow, grow, grow))
        centre = outline.center()
        painter.drawPoint(centre)
        painter.restore()

    def _draw_selection_lines(self, painter: QPainter) -> None:
        """The mask's outline and the selection being drawn, as crisp dashed lines."""
        paths = []
        if not self._mask_outline.isEmpty() and not self.staging():
            paths.append(self._mask_outline)
        if self._shape_points is not None and len(self._shape_points) > 1:
            paths.append(shape_path(self.tool, self._shape_points))
        if not paths:
            return
        painter.save()
        to_view = self.viewportTransform()
        painter.resetTransform()
        for path in paths:
            mapped = to_view.map(path)
            painter.setPen(QPen(QColor(0, 0, 0, 220), 1.0))
            painter.drawPath(mapped)
            dashed = QPen(QColor(255, 255, 255, 230), 1.0)
            dashed.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(dashed)
            painter.drawPath(mapped)
        painter.restore()

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        painter.fillRect(rect, BACKGROUND)
        picture = self.content_rect()
        if not picture.isEmpty():
            painter.save()
            painter.resetTransform()
            frame = self.viewportTransform().mapRect(picture).adjusted(-1, -1, 1, 1)
            painter.setPen(QPen(QColor(0, 0, 0, 140), 1.0))
            painter.drawRect(frame)
            painter.restore()
            return
        painter.save()
        painter.resetTransform()
        area = QRectF(self.viewport().rect())
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        painter.setFont(font)
        painter.setPen(HINT_COLOUR)
        painter.drawText(
            area.adjusted(0, 0, 0, -24),
            Qt.AlignmentFlag.AlignCenter,
            "Open or drop an image, or generate one",
        )
        font.setPointSizeF(font.pointSizeF() / 1.3 * 0.95)
        painter.setFont(font)
        painter.setPen(HINT_COLOUR.darker(130))
        painter.drawText(
            area.adjusted(0, 28, 0, 0),
            Qt.AlignmentFlag.AlignCenter,
            "Ctrl+V pastes an image from the clipboard",
        )
        painter.restore()

    # -- drops ----------------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if _local_files(event.mimeData()) or event.mimeData().hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        data = event.mimeData()
        files = _local_files(data)
        if files:
            self.filesDropped.emit(files)
        elif data.hasImage():
            self.imageDropped.emit(QImage(data.imageData()))
        else:
            event.ignore()
            return
        event.acceptProposedAction()


def _local_files(data) -> list[str]:
    return [url.toLocalFile() for url in data.urls() if url.isLocalFile()] if data.hasUrls() else []
