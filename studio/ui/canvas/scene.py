"""What the canvas draws: the picture's layers, its mask, a staged result and a live preview.

Scene coordinates are image pixels: layer (0, 0) is scene (0, 0) and one image pixel is
one scene unit, so a mouse position maps to a mask pixel with no bookkeeping.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, Qt, Signal
from PySide6.QtGui import QPainter, QPixmap, QTransform
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QStyleOptionGraphicsItem,
    QWidget,
)

from studio.ui.canvas.layers import Layer, Picture

_Z_LAYERS, _Z_MASK, _Z_STAGED, _Z_PREVIEW = 0.0, 1000.0, 2000.0, 3000.0


class MaskItem(QGraphicsItem):
    """Draws the mask's indexed image; repaints only what was exposed, so a dab costs a dab."""

    def __init__(self) -> None:
        super().__init__()
        self._picture: Picture | None = None
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption)
        self.setZValue(_Z_MASK)

    def set_picture(self, picture: Picture) -> None:
        self.prepareGeometryChange()
        self._picture = picture

    def boundingRect(self) -> QRectF:
        return QRectF() if self._picture is None else QRectF(self._picture.rect())

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        mask = None if self._picture is None else self._picture.mask
        if mask is None:
            return
        area = option.exposedRect.toAlignedRect().intersected(self._picture.rect())
        if not area.isEmpty():
            painter.drawImage(area, mask.image, area)


class ImageItem(QGraphicsItem):
    """A pixmap stretched over a scene rect, drawn from a halved copy when zoomed far out.

    Bilinear filtering of a 4000 px photo shown 1000 px wide reads one pixel in four: the
    view shimmers and still pays for the whole image. Halved copies, made once on first
    need with area averaging, look right and cost only what is drawn.
    """

    def __init__(self, z: float) -> None:
        super().__init__()
        self._levels: list[QPixmap] = []
        self._rect = QRectF()
        self.setZValue(z)

    def set_pixmap(self, pixmap: QPixmap, rect: QRectF) -> None:
        self.prepareGeometryChange()
        self._levels = [pixmap]
        self._rect = QRectF(rect)
        self.update()

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        if not self._levels:
            return
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        shown = lod * self._rect.width() / max(1, self._levels[0].width())  # screen px per pixel
        level = 0
        while shown <= 0.5 and min(self._level(level).width(), self._level(level).height()) > 64:
            level += 1
            shown *= 2
        pixmap = self._level(level)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawPixmap(self._rect, pixmap, QRectF(pixmap.rect()))

    def _level(self, level: int) -> QPixmap:
        while len(self._levels) <= level:
            last = self._levels[-1]
            self._levels.append(
                last.scaled(
                    max(1, last.width() // 2),
                    max(1, last.height() // 2),
                    Qt.AspectRatioMode.IgnoreAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )
        return self._levels[level]


def _pixmap_item(z: float) -> QGraphicsPixmapItem:
    item = QGraphicsPixmapItem()
    item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
    item.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
    item.setZValue(z)
    return item


def _place(item: QGraphicsPixmapItem, pixmap: QPixmap, rect: QRectF) -> None:
    """Show `pixmap` stretched over `rect` (scene pixels)."""
    item.setPixmap(pixmap)
    scale_x = rect.width() / max(1, pixmap.width())
    scale_y = rect.height() / max(1, pixmap.height())
    item.setTransform(QTransform.fromScale(scale_x, scale_y))
    item.setPos(rect.topLeft())


class PictureScene(QGraphicsScene):
    """Items for a Picture's layers and mask, plus a staged result and a preview above them.

    Signal contentChanged(): the area there is to look at changed (a picture opened, or a
    result staged with no picture open), so the view may want to fit again.
    """

    contentChanged = Signal()

    def __init__(self, picture: Picture, parent=None) -> None:
        super().__init__(parent)
        self.picture = picture
        self._layer_items: list[ImageItem] = []
        self._pixmaps: dict[int, QPixmap] = {}  # QImage.cacheKey -> pixmap, for layers on show
        self._content: QRectF | None = None  # the area last reported by contentChanged
        self.mask_item = MaskItem()
        self.mask_item.set_picture(picture)
        self.addItem(self.mask_item)
        self._staged_item = ImageItem(_Z_STAGED)
        self._preview_item = _pixmap_item(_Z_PREVIEW)
        for item in (self._staged_item, self._preview_item):
            item.setVisible(False)
            self.addItem(item)
        picture.layersChanged.connect(self._sync_layers)
        picture.sizeChanged.connect(self._sync_size)
        picture.maskChanged.connect(self._mask_changed)
        self._sync_size()

    def content_rect(self) -> QRectF:
        """The picture, or with none open, the staged result or live preview in its place."""
        rect = QRectF(self.picture.rect())
        if rect.isEmpty():
            for item in (self._staged_item, self._preview_item):
                if item.isVisible():
                    return item.sceneBoundingRect()
        return rect

    def staging(self) -> bool:
        return self._staged_item.isVisible()

    def show_staged(self, pixmap: QPixmap | None, rect: QRectF | None = None) -> None:
        """Show a staged result over the layers (the mask overlay hides meanwhile)."""
        if pixmap is not None:
            self._staged_item.set_pixmap(pixmap, rect or QRectF(self.picture.rect()))
        self._staged_item.setVisible(pixmap is not None)
        self._sync_occlusion()
        if self.picture.size is None:
            self._sync_size()

    def show_preview(self, pixmap: QPixmap | None, rect: QRectF | None = None) -> None:
        """Show (or hide, with None) a live preview stretched over `rect`."""
        if pixmap is not None:
            _place(self._preview_item, pixmap, rect or QRectF(self.picture.rect()))
        self._preview_item.setVisible(pixmap is not None)
        self._sync_occlusion()
        # Previews come 20 times a second: refit only when the area to show changes.
        if self.picture.size is None and self.content_rect() != self._content:
            self._sync_size()

    def update_mask(self, rect: QRect) -> None:
        """Repaint the mask overlay inside `rect` (image pixels) after writing to it directly."""
        if not rect.isEmpty():
            self.mask_item.update(QRectF(rect))

    def _sync_size(self) -> None:
        self.mask_item.set_picture(self.picture)
        rect = self._content = self.content_rect()
        # Room around the image so any part of it can be panned to the middle of the view.
        margin = 2.0 * max(rect.width(), rect.height(), 256.0)
        self.setSceneRect(rect.adjusted(-margin, -margin, margin, margin))
        self.contentChanged.emit()

    def _sync_layers(self) -> None:
        shown = _layers_on_show(self.picture)
        wanted = {layer.image.cacheKey() for layer in shown}
        self._pixmaps = {k: v for k, v in self._pixmaps.items() if k in wanted}
        for item in self._layer_items:
            self.removeItem(item)
        self._layer_items = []
        for depth, layer in enumerate(shown):
            key = layer.image.cacheKey()
            if key not in self._pixmaps:
                self._pixmaps[key] = QPixmap.fromImage(layer.image)
            item = ImageItem(_Z_LAYERS + depth)
            item.set_pixmap(self._pixmaps[key], QRectF(layer.rect))
            item.setOpacity(layer.opacity)
            self.addItem(item)
            self._layer_items.append(item)
        self._sync_occlusion()

    def _mask_changed(self, rect: QRect) -> None:
        self.mask_item.update(QRectF(self.picture.rect() if rect.isEmpty() else rect))

    def _sync_occlusion(self) -> None:
        # Layers under a full-size preview are not drawn: a 20 fps preview over a 12 MP photo
        # then costs the preview's own pixels only.
        full = QRectF(self.picture.rect())
        covered = (
            self._preview_item.isVisible() and self._preview_item.sceneBoundingRect().contains(full)
        )
        for item in self._layer_items:
            item.setVisible(not covered)
        self.mask_item.setVisible(not covered and not self._staged_item.isVisible())


def _pixmap_item(z: float) -> QGraphicsPixmapItem:
    item = QGraphicsPixmapItem()
    item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
    item.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
    item.setZValue(z)
    return item


def _place(item: QGraphicsPixmapItem, pixmap: QPixmap, rect: QRectF) -> None:
    """Show `pixmap` stretched over `rect` (scene pixels)."""
    item.setPixmap(pixmap)
    scale_x = rect.width() / max(1, pixmap.width())
    scale_y = rect.height() / max(1, pixmap.height())
    item.setTransform(QTransform.fromScale(scale_x, scale_y))
    item.setPos(rect.topLeft())


def _layers_on_show(picture: Picture) -> list[Layer]:
    """Visible layers from the topmost one that hides everything beneath it."""
    visible = [layer for layer in picture.layers if layer.visible]
    full = picture.rect()
    for index in range(len(visible) - 1, -1, -1):
        if visible[index].hides_below(full):
            return visible[index:]
    return visible
