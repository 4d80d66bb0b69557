"""Selections: rectangle, ellipse and lasso shapes that replace, add to or subtract from the
mask, and growing or shrinking the mask. Each gives a MaskPatch, so it is one undo step."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QImage, QPainter, QPainterPath, QPolygonF

from studio.ui.canvas.convert import pixels
from studio.ui.canvas.mask import MaskPatch, patch_between, region

SHAPES = ("rectangle", "ellipse", "lasso")
OPERATIONS = ("replace", "add", "subtract")


def shape_path(shape: str, points: list[QPointF]) -> QPainterPath:
    """The outline a drag through `points` (image pixels) makes with a selection tool."""
    path = QPainterPath()
    if len(points) < 2:
        return path
    if shape == "lasso":
        path.addPolygon(QPolygonF(points))
        path.closeSubpath()
        return path
    rect = QRectF(points[0], points[-1]).normalized()
    if shape == "ellipse":
        path.addEllipse(rect)
    else:
        path.addRect(rect)
    return path


def coverage(path: QPainterPath, width: int, height: int) -> tuple[QRect, np.ndarray] | None:
    """The shape's antialiased coverage (0..255) inside its bounding box, clipped to the mask."""
    box = path.boundingRect().toAlignedRect().intersected(QRect(0, 0, width, height))
    if box.isEmpty():
        return None
    image = QImage(box.width(), box.height(), QImage.Format.Format_Grayscale8)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(Qt.GlobalColor.white)
    painter.translate(-box.x(), -box.y())
    painter.drawPath(path)
    painter.end()
    return box, pixels(image, writable=False).copy()


def select(values: np.ndarray, path: QPainterPath, operation: str) -> MaskPatch | None:
    """The patch that applies a selection to the mask `values` (H x W uint8)."""
    if operation not in OPERATIONS:
        raise ValueError(f"unknown selection operation {operation!r}")
    height, width = values.shape
    found = coverage(path, width, height)
    if operation == "replace":
        after = np.zeros_like(values)
        if found is not None:
            box, cover = found
            after[region(box)] = cover
        return patch_between(values, after)
    if found is None:
        return None
    box, cover = found
    window = region(box)
    before = values[window]
    if operation == "add":
        changed = np.maximum(before, cover)
    else:
        changed = np.minimum(before, 255 - cover)
    after_box = before.copy()
    after_box[...] = changed
    if np.array_equal(after_box, before):
        return None
    return MaskPatch(QRect(box), before.copy(), after_box)


def grown(values: np.ndarray, pixels_: int) -> MaskPatch | None:
    """The patch that grows (positive) or shrinks (negative) the mask by whole pixels."""
    if pixels_ == 0 or not values.any():
        return None
    from PIL import Image

    from studio.engine.masks import grow

    image = Image.fromarray(values, "L")
    after = np.asarray(grow(image, pixels_), dtype=np.uint8)
    return patch_between(values, after)


def outline(values: np.ndarray) -> QPainterPath:
    """The mask's edge (where it crosses half strength) as a path, for drawing while painting."""
    inside = values >= 128
    path = QPainterPath()
    if not inside.any():
        return path
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    part = inside[top:bottom, left:right]
    # Horizontal edges: where a row differs from the row above; vertical ones likewise.
    padded = np.pad(part, 1)
    horizontal = padded[1:, 1:-1] != padded[:-1, 1:-1]
    vertical = padded[1:-1, 1:] != padded[1:-1, :-1]
    for y, xs in _runs(horizontal):
        for x0, x1 in xs:
            path.moveTo(left + x0, top + y)
            path.lineTo(left + x1, top + y)
    for x, ys in _runs(vertical.T):
        for y0, y1 in ys:
            path.moveTo(left + x, top + y0)
            path.lineTo(left + x, top + y1)
    return path


def _runs(edges: np.ndarray) -> list[tuple[int, list[tuple[int, int]]]]:
    """For each row of a boolean array: the [start, end) runs of True."""
    out = []
    for index in np.flatnonzero(edges.any(axis=1)):
        row = np.concatenate(([0], edges[index].astype(np.int8), [0]))
        change = np.flatnonzero(np.diff(row))
        out.append((int(index), list(zip(change[0::2].tolist(), change[1::2].tolist(), strict=True))))
    return out
