"""The picture being edited: its size, its image layers (bottom to top) and its mask.

Views draw it and undo commands change it; it knows nothing of either. Layers are frozen
values whose QImages are implicitly shared, so a snapshot of the picture for undo is a
tuple copy, not a pixel copy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QRect, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPainter

from studio.ui.canvas.mask import Mask, MaskPatch, region


@dataclass(frozen=True)
class Layer:
    """One image on the canvas, drawn scaled into `rect` (canvas pixels)."""

    name: str
    image: QImage
    rect: QRect
    visible: bool = True
    opacity: float = 1.0  # 0..1

    def hides_below(self, area: QRect) -> bool:
        """Whether this layer alone decides every pixel of `area` (opaque and covering it)."""
        return (
            self.visible
            and self.opacity >= 1.0
            and self.rect.contains(area)
            and not self.image.hasAlphaChannel()
        )


@dataclass(frozen=True)
class SparseMask:
    """A mask kept for undo as only the box around its painted pixels."""

    size: QSize
    rect: QRect
    values: np.ndarray | None

    @classmethod
    def of(cls, mask: Mask | None, size: QSize) -> SparseMask:
        if mask is None or mask.is_empty():
            return cls(QSize(size), QRect(), None)
        painted = mask.values != 0
        rows = np.flatnonzero(painted.any(axis=1))
        cols = np.flatnonzero(painted.any(axis=0))
        rect = QRect(
            int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)
        )
        return cls(QSize(size), rect, mask.values[region(rect)].copy())


@dataclass(frozen=True)
class PictureState:
    """Everything undo needs to put the picture back: size, layers and mask."""

    size: QSize | None
    layers: tuple[Layer, ...]
    mask: SparseMask | None


class Picture(QObject):
    """Layers and mask of the open picture, with change signals.

    Signals:
    - layersChanged(): layers were added, removed, replaced or shown/hidden.
    - maskChanged(QRect): mask pixels inside the rect changed (an empty rect = all of it).
    - sizeChanged(): the canvas size changed (a picture opened or the first result accepted).
    """

    layersChanged = Signal()
    maskChanged = Signal(QRect)
    sizeChanged = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size: QSize | None = None
        self.layers: tuple[Layer, ...] = ()
        self.mask: Mask | None = None

    def rect(self) -> QRect:
        return QRect() if self.size is None else QRect(0, 0, self.size.width(), self.size.height())

    # -- state for undo -------------------------------------------------------------------

    def state(self) -> PictureState:
        mask = None if self.size is None else SparseMask.of(self.mask, self.size)
        return PictureState(None if self.size is None else QSize(self.size), self.layers, mask)

    def restore(self, state: PictureState) -> None:
        resized = state.size != self.size
        self.size = None if state.size is None else QSize(state.size)
        self.layers = state.layers
        if self.size is None:
            self.mask = None
        else:
            if resized or self.mask is None:
                self.mask = Mask(self.size.width(), self.size.height())
            else:
                self.mask.values[...] = 0
            if state.mask is not None and state.mask.values is not None:
                self.mask.values[region(state.mask.rect)] = state.mask.values
        if resized:
            self.sizeChanged.emit()
        self.layersChanged.emit()
        self.maskChanged.emit(QRect())

    # -- edits ----------------------------------------------------------------------------

    def set_layer_visible(self, index: int, visible: bool) -> None:
        layers = list(self.layers)
        if layers[index].visible == visible:
            return
        layers[index] = dataclasses.replace(layers[index], visible=visible)
        self.layers = tuple(layers)
        self.layersChanged.emit()

    def apply_patch(self, patch: MaskPatch, undo: bool = False) -> None:
        if self.mask is None:
            return
        self.mask.values[region(patch.rect)] = patch.before if undo else patch.after
        self.maskChanged.emit(QRect(patch.rect))

    def invert_mask(self) -> None:
        if self.mask is None:
            return
        np.subtract(255, self.mask.values, out=self.mask.values)
        self.maskChanged.emit(QRect())

    # -- reading --------------------------------------------------------------------------

    def flattened(self) -> QImage | None:
        """The visible layers composited at canvas size (black where none covers)."""
        if self.size is None:
            return None
        return self.flatten(self.layers)

    def flatten(self, layers: tuple[Layer, ...]) -> QImage | None:
        """`layers` (the visible ones) composited at canvas size (black where none covers)."""
        if self.size is None:
            return None
        visible = [layer for layer in layers if layer.visible]
        full = self.rect()
        if (
            len(visible) >= 1
            and visible[-1].hides_below(full)
            and visible[-1].rect == full
            and visible[-1].image.size() == self.size
        ):
            return visible[-1].image  # an opaque full-size top layer hides everything below
        result = QImage(self.size, QImage.Format.Format_RGB32)
        result.fill(Qt.GlobalColor.black)
        painter = QPainter(result)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        for layer in visible:
            painter.setOpacity(layer.opacity)
            painter.drawImage(layer.rect, layer.image)
        painter.end()
        return result
