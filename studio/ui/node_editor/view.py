"""The view onto the node scene: wheel zoom, middle-button pan, rubber-band selection."""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QGraphicsProxyWidget, QGraphicsView, QPlainTextEdit, QWidget

from studio.ui.node_editor import style
from studio.ui.node_editor.scene import NodeScene

MIN_ZOOM, MAX_ZOOM = 0.15, 2.5


class NodeView(QGraphicsView):
    """Signals: paletteRequested(scene position) when Tab is pressed over the graph."""

    paletteRequested = Signal(QPointF)

    def __init__(self, scene: NodeScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._pan_from: QPoint | None = None
        # The editor's keyboard actions (undo, delete, copy...). The view claims their keys
        # while it has focus, so a window-wide action on the same key (Edit > Undo) does not
        # make the shortcut ambiguous, which in Qt means neither fires.
        self.claimed_actions: list[QAction] = []

    def zoom(self) -> float:
        return self.transform().m11()

    def zoom_by(self, factor: float) -> None:
        factor = max(MIN_ZOOM / self.zoom(), min(MAX_ZOOM / self.zoom(), factor))
        self.scale(factor, factor)

    def fit(self) -> None:
        """Show the whole graph, no larger than 100 %."""
        rect = self.scene().itemsBoundingRect()
        if rect.isEmpty():
            self.resetTransform()
            self.centerOn(0, 0)
            return
        rect = rect.adjusted(-30, -30, 30, 30)
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom() > 1.0:
            self.resetTransform()
        elif self.zoom() < MIN_ZOOM:
            self.resetTransform()
            self.scale(MIN_ZOOM, MIN_ZOOM)
        self.centerOn(rect.center())

    def cursor_scene_pos(self) -> QPointF:
        """Where the mouse is over the graph, or the middle of the view if it is elsewhere."""
        local = self.viewport().mapFromGlobal(self.cursor().pos())
        if not self.viewport().rect().contains(local):
            local = self.viewport().rect().center()
        return self.mapToScene(local)

    def _editing(self) -> bool:
        """Whether a field inside a node has the keyboard (it gets Tab, wheel and keys)."""
        return isinstance(self.scene().focusItem(), QGraphicsProxyWidget)

    # -- events ------------------------------------------------------------------------------

    def _claimed(self, event: QKeyEvent) -> QAction | None:
        pressed = QKeySequence(event.keyCombination())
        for action in self.claimed_actions:
            for keys in action.shortcuts():
                if keys.matches(pressed) == QKeySequence.SequenceMatch.ExactMatch:
                    return action
        return None

    def event(self, event: QEvent) -> bool:
        if (
            event.type() == QEvent.Type.ShortcutOverride
            and isinstance(event, QKeyEvent)
            and not self._editing()
            and self._claimed(event) is not None
        ):
            event.accept()
            return True
        # Tab would otherwise move focus between widgets before keyPressEvent sees it.
        if (
            event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Tab
            and not self._editing()
        ):
            self.paletteRequested.emit(self.cursor_scene_pos())
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        action = None if self._editing() else self._claimed(event)
        if action is not None:
            if action.isEnabled():
                action.trigger()
            event.accept()
            return
        super().keyPressEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        focus = self.scene().focusItem()
        if (
            isinstance(focus, QGraphicsProxyWidget)
            and isinstance(focus.widget().focusWidget(), QPlainTextEdit)
            and focus.isUnderMouse()
        ):
            super().wheelEvent(event)  # scroll a prompt being edited
            return
        # Everywhere else the wheel zooms: a spin box under the cursor must not change value.
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta:
            self.zoom_by(math.pow(1.15, delta / 120))
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.MiddleButton:
            self._pan_from = event.position().toPoint()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._pan_from is not None:
            now = event.position().toPoint()
            delta = now - self._pan_from
            self._pan_from = now
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.MiddleButton and self._pan_from is not None:
            self._pan_from = None
            self.viewport().unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        painter.fillRect(rect, style.SCENE_BACKGROUND)
        step = style.GRID_STEP
        if self.zoom() < 0.4:
            step *= 5  # a fine grid far out is noise
        for color, every in ((style.GRID_MINOR, 1), (style.GRID_MAJOR, 5)):
            painter.setPen(QPen(color, 0))
            x = math.floor(rect.left() / step) * step
            while x < rect.right():
                if round(x / step) % every == 0:
                    painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
                x += step
            y = math.floor(rect.top() / step) * step
            while y < rect.bottom():
                if round(y / step) % every == 0:
                    painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
                y += step
