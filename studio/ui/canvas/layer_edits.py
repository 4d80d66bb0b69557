"""Edits of the canvas's layers, each one undo step: show/hide, opacity, rename, reorder,
delete, merge down, and growing the canvas for outpainting.

Layers are frozen values, so every edit is a new tuple of layers pushed as a ChangePicture;
undo puts the old tuple back (pixels are shared, not copied).
"""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QRect, QSize
from PySide6.QtGui import QImage, QPainter, QUndoStack

from studio.errors import ImageError
from studio.ui.canvas.commands import ChangePicture
from studio.ui.canvas.layers import Layer, Picture, PictureState, SparseMask
from studio.ui.canvas.mask import Mask


class LayerEdits:
    """The layer operations of one canvas (its Picture and undo stack)."""

    def __init__(self, picture: Picture, undo_stack: QUndoStack) -> None:
        self.picture = picture
        self.undo_stack = undo_stack

    def _check(self, index: int) -> Layer:
        layers = self.picture.layers
        if not 0 <= index < len(layers):
            raise ImageError(f"There is no layer {index + 1}: the canvas has {len(layers)}.")
        return layers[index]

    def _push(self, layers: list[Layer], text: str) -> None:
        before = self.picture.state()
        after = dataclasses.replace(before, layers=tuple(layers))
        self.undo_stack.push(ChangePicture(self.picture, before, after, text))

    def _change(self, index: int, text: str, **changes) -> None:
        layer = self._check(index)
        if all(getattr(layer, key) == value for key, value in changes.items()):
            return
        layers = list(self.picture.layers)
        layers[index] = dataclasses.replace(layer, **changes)
        self._push(layers, text)

    def set_visible(self, index: int, visible: bool) -> None:
        self._change(index, "Show layer" if visible else "Hide layer", visible=bool(visible))

    def set_opacity(self, index: int, opacity: float) -> None:
        opacity = min(1.0, max(0.0, float(opacity)))
        self._change(index, "Layer opacity", opacity=opacity)

    def rename(self, index: int, name: str) -> None:
        name = name.strip()
        if name:
            self._change(index, "Rename layer", name=name)

    def move(self, index: int, to: int) -> None:
        """Put layer `index` at position `to` (0 = bottom)."""
        self._check(index)
        to = min(max(0, to), len(self.picture.layers) - 1)
        if to == index:
            return
        layers = list(self.picture.layers)
        layers.insert(to, layers.pop(index))
        self._push(layers, "Move layer")

    def delete(self, index: int) -> None:
        self._check(index)
        layers = list(self.picture.layers)
        del layers[index]
        self._push(layers, "Delete layer")

    def merge_down(self, index: int) -> None:
        """Merge layer `index` into the one below it; the result keeps the lower one's name."""
        upper = self._check(index)
        if index == 0:
            raise ImageError("The bottom layer has no layer below it to merge into.")
        lower = self.picture.layers[index - 1]
        rect = lower.rect.united(upper.rect) if upper.visible else QRect(lower.rect)
        alpha = lower.image.hasAlphaChannel() or rect != lower.rect
        image = QImage(
            rect.size(),
            QImage.Format.Format_RGBA8888 if alpha else QImage.Format.Format_RGB888,
        )
        image.fill(0)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.translate(-rect.x(), -rect.y())
        painter.setOpacity(lower.opacity)
        painter.drawImage(lower.rect, lower.image)
        if upper.visible:
            painter.setOpacity(upper.opacity)
            painter.drawImage(upper.rect, upper.image)
        painter.end()
        merged = Layer(lower.name, image, rect, lower.visible, 1.0)
        layers = list(self.picture.layers)
        layers[index - 1 : index + 1] = [merged]
        self._push(layers, "Merge down")

    def add(self, layer: Layer, text: str = "Add layer") -> None:
        self._push([*self.picture.layers, layer], text)

    def expand(self, left: int, top: int, right: int, bottom: int, fill: QImage) -> None:
        """Grow the canvas (outpainting): layers move by (left, top), `fill` becomes the new
        bottom layer, and the mask covers exactly the new area. One undo step."""
        size = self.picture.size
        if size is None:
            raise ImageError("Open or generate a picture before expanding the canvas.")
        width, height = size.width() + left + right, size.height() + top + bottom
        if fill.size() != QSize(width, height):
            raise ImageError("The outpainting fill does not match the new canvas size.")
        before = self.picture.state()
        moved = tuple(
            dataclasses.replace(layer, rect=layer.rect.translated(left, top))
            for layer in self.picture.layers
        )
        base = Layer("Outpaint fill", fill, QRect(0, 0, width, height))
        mask = Mask(width, height)
        mask.values[...] = 255
        mask.values[top : top + size.height(), left : left + size.width()] = 0
        new_size = QSize(width, height)
        after = PictureState(new_size, (base, *moved), SparseMask.of(mask, new_size))
        self.undo_stack.push(ChangePicture(self.picture, before, after, "Expand canvas"))

