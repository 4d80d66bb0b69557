"""The inpainting mask: one byte per image pixel (255 = repaint), and the brush that paints it.

The mask is an 8-bit indexed QImage whose colour table maps each value to the tint at that
opacity, so the very bytes the brush writes are what the view draws: no overlay to keep in
step, no conversion per stroke. numpy writes through a view of the same buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRect
from PySide6.QtGui import QColor, QImage, qRgba

from studio.ui.canvas.convert import pixels

DEFAULT_TINT = QColor(255, 40, 40)
# How opaque a fully masked pixel looks over the image: enough to see, not enough to hide it.
OVERLAY_OPACITY = 0.5


class Mask:
    """A width x height mask; `values` is a writable (H, W) uint8 view of `image`."""

    def __init__(self, width: int, height: int, tint: QColor = DEFAULT_TINT) -> None:
        self.image = QImage(width, height, QImage.Format.Format_Indexed8)
        self.set_tint(tint)
        self.values = pixels(self.image)
        self.values[...] = 0

    @property
    def width(self) -> int:
        return self.image.width()

    @property
    def height(self) -> int:
        return self.image.height()

    def set_tint(self, tint: QColor) -> None:
        """Colour the overlay; only the colour table changes, not the mask values."""
        red, green, blue = tint.red(), tint.green(), tint.blue()
        self.image.setColorTable(
            [qRgba(red, green, blue, round(v * OVERLAY_OPACITY)) for v in range(256)]
        )

    def is_empty(self) -> bool:
        return not self.values.any()


@dataclass(frozen=True)
class MaskPatch:
    """The pixels of one mask edit inside `rect`, before and after: an undo step's payload."""

    rect: QRect
    before: np.ndarray
    after: np.ndarray


def changed_rect(before: np.ndarray, after: np.ndarray) -> QRect:
    """The bounding box of the pixels that differ (an empty QRect when none do)."""
    diff = before != after
    rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
    if rows.size == 0:
        return QRect()
    return QRect(
        int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)
    )


def patch_between(before: np.ndarray, after: np.ndarray) -> MaskPatch | None:
    """The smallest patch that turns `before` into `after`, or None when they are equal."""
    rect = changed_rect(before, after)
    if rect.isEmpty():
        return None
    box = region(rect)
    return MaskPatch(rect, before[box].copy(), after[box].copy())


def region(rect: QRect) -> tuple[slice, slice]:
    """numpy index of `rect`'s pixels."""
    return slice(rect.top(), rect.bottom() + 1), slice(rect.left(), rect.right() + 1)


class Stroke:
    """One press..release of the brush or eraser on a mask.

    Dabs accumulate into a stroke buffer with max(), then the buffer is combined with the
    mask as it was at the press, so overlapping dabs of a soft brush do not build up into
    a hard edge and the eraser never removes more than the stroke's own coverage.
    """

    def __init__(self, mask: Mask, size: float, hardness: float, erase: bool) -> None:
        self.mask = mask
        self.radius = max(0.5, size / 2.0)
        self.hardness = min(1.0, max(0.0, hardness))
        self.erase = erase
        self._start = mask.values.copy()
        self._coverage = np.zeros_like(self._start)  # calloc: pages appear only where painted
        self._last: QPointF | None = None
        self._dirty = QRect()

    def add(self, point: QPointF) -> QRect:
        """Paint from the previous point to `point` (a dab on the first call); returns the changed area."""
        start = self._last if self._last is not None else point
        self._last = QPointF(point)
        # Long segments are painted in pieces so each bounding box stays near the brush size.
        length = math.hypot(point.x() - start.x(), point.y() - start.y())
        pieces = max(1, math.ceil(length / max(4.0 * self.radius, 16.0)))
        changed = QRect()
        for i in range(pieces):
            a = start + (point - start) * (i / pieces)
            b = start + (point - start) * ((i + 1) / pieces)
            changed = changed.united(self._segment(a, b))
        self._dirty = self._dirty.united(changed)
        return changed

    def finish(self) -> MaskPatch | None:
        """The stroke as an undo payload, or None when it changed nothing."""
        if self._dirty.isEmpty():
            return None
        box = region(self._dirty)
        before, after = self._start[box], self.mask.values[box]
        if np.array_equal(before, after):
            return None
        return MaskPatch(QRect(self._dirty), before.copy(), after.copy())

    def _segment(self, a: QPointF, b: QPointF) -> QRect:
        r = self.radius
        height, width = self._start.shape
        x0 = max(0, math.floor(min(a.x(), b.x()) - r - 1))
        y0 = max(0, math.floor(min(a.y(), b.y()) - r - 1))
        x1 = min(width, math.ceil(max(a.x(), b.x()) + r + 1))
        y1 = min(height, math.ceil(max(a.y(), b.y()) + r + 1))
        if x0 >= x1 or y0 >= y1:
            return QRect()
        dab = segment_coverage(a, b, x0, y0, x1, y1, r, self.hardness)
        box = (slice(y0, y1), slice(x0, x1))
        coverage = self._coverage[box]
        np.maximum(coverage, dab, out=coverage)
        if self.erase:
            kept = self._start[box].astype(np.uint16) * (255 - coverage.astype(np.uint16))
            self.mask.values[box] = (kept + 127) // 255
        else:
            np.maximum(self._start[box], coverage, out=self.mask.values[box])
        return QRect(x0, y0, x1 - x0, y1 - y0)


def segment_coverage(
    a: QPointF, b: QPointF, x0: int, y0: int, x1: int, y1: int, radius: float, hardness: float
) -> np.ndarray:
    """Brush coverage (0..255) of pixels [y0:y1, x0:x1] for a capsule from `a` to `b`.

    Full inside radius * hardness, then a smooth fall to zero at the radius; even a hard
    brush keeps a one-pixel ramp so its edge is antialiased.
    """
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    ax, ay, dx, dy = a.x(), a.y(), b.x() - a.x(), b.y() - a.y()
    length2 = dx * dx + dy * dy
    if length2 > 1e-9:
        t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0.0, 1.0)
        distance = np.hypot(xs - (ax + t * dx), ys - (ay + t * dy))
    else:
        distance = np.hypot(xs - ax, ys - ay)
    falloff = max((1.0 - hardness) * radius, 1.0)
    value = np.clip((radius - distance) / falloff, 0.0, 1.0)
    value = value * value * (3.0 - 2.0 * value)  # smoothstep: no visible ring at the inner edge
    return (value * 255.0 + 0.5).astype(np.uint8)
