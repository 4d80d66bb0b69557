"""What the Canvas does beyond painting: the generation region, selections, growing the mask,
outpainting, the layer to generate from, and previews clipped to the mask.

A mixin of `Canvas` (widget.py), kept apart so each file holds one idea.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from PySide6.QtCore import QRect, QRectF, Qt, QTimer
from PySide6.QtGui import QImage, QPainterPath, QPixmap

from studio.errors import ImageError
from studio.ui.canvas.commands import EditMask
from studio.ui.canvas.convert import pixels, qimage_from_array, qimage_from_pil
from studio.ui.canvas.selection import grown, outline, select

if TYPE_CHECKING:
    from studio.ui.canvas.layer_edits import LayerEdits
    from studio.ui.canvas.layers import Picture
    from studio.ui.canvas.view import CanvasView

# Longest side of a clipped preview: enough for a smooth edge, cheap at 20 frames a second.
_PREVIEW_SIDE = 512


class CanvasTools:
    _picture: Picture
    view: CanvasView
    layer_edits: LayerEdits

    def _init_tools(self) -> None:
        self._region: QRect | None = None  # None: the whole picture
        self.source_layer: int | None = None  # None: the visible layers, flattened
        self._preview_clip: np.ndarray | None = None
        self._outline_timer = QTimer(self)  # type: ignore[arg-type]
        self._outline_timer.setSingleShot(True)
        self._outline_timer.setInterval(0)
        self._outline_timer.timeout.connect(self._update_outline)
        self._picture.maskChanged.connect(lambda _rect: self._outline_timer.start())
        self._picture.sizeChanged.connect(self._picture_resized)
        self.view.selectionFinished.connect(self.apply_selection)
        self.view.regionEdited.connect(self._region_dragged)

    # -- the generation region -------------------------------------------------------------

    def region(self) -> tuple[int, int, int, int] | None:
        """(x, y, width, height) of the generation region; None when it is the whole picture."""
        rect = self._region
        return None if rect is None else (rect.x(), rect.y(), rect.width(), rect.height())

    def set_region(self, region: tuple[int, int, int, int] | None) -> None:
        """Show `region` as the generation region (None or the full picture: the whole of it)."""
        full = self._picture.rect()
        rect = None
        if region is not None and region[2] > 0 and region[3] > 0:
            rect = QRect(*region).intersected(full) if not full.isEmpty() else QRect(*region)
            if rect.isEmpty() or rect == full:
                rect = None
        self._region = rect
        self.view.set_region_rect(rect or full)

    def set_region_used(self, used: bool) -> None:
        """Whether the workflow works on a region: without one the frame is not drawn."""
        self.view.region_frame.set_used(used)

    def fit_region_to_mask(self, padding: int = 32) -> None:
        """Make the region the mask's bounding box plus `padding` pixels (clipped)."""
        mask = self._picture.mask
        if mask is None or mask.is_empty():
            raise ImageError("Paint or select an area first: the mask is empty.")
        rows = np.flatnonzero(mask.values.any(axis=1))
        cols = np.flatnonzero(mask.values.any(axis=0))
        rect = QRect(
            int(cols[0]) - padding,
            int(rows[0]) - padding,
            int(cols[-1] - cols[0] + 1) + 2 * padding,
            int(rows[-1] - rows[0] + 1) + 2 * padding,
        ).intersected(self._picture.rect())
        self.set_region((rect.x(), rect.y(), rect.width(), rect.height()))
        self.regionEdited.emit(self.region())  # type: ignore[attr-defined]

    def reset_region(self) -> None:
        self.set_region(None)
        self.regionEdited.emit(None)  # type: ignore[attr-defined]

    def _region_dragged(self, rect: QRect) -> None:
        self.set_region((rect.x(), rect.y(), rect.width(), rect.height()))
        self.regionEdited.emit(self.region())  # type: ignore[attr-defined]

    def _picture_resized(self) -> None:
        # A new picture (or a bigger canvas): the region is all of it again.
        self._region = None
        self.view.set_region_rect(self._picture.rect())
        self.source_layer = None

    # -- selections and the mask -----------------------------------------------------------

    def apply_selection(self, path: QPainterPath, operation: str = "replace") -> None:
        """Replace, add to or subtract from the mask with a shape (image pixels); undoable."""
        mask = self._picture.mask
        if mask is None:
            return
        patch = select(mask.values, path, operation)
        if patch is not None:
            names = {"replace": "Select", "add": "Add to selection", "subtract": "Subtract"}
            self.undo_stack.push(EditMask(self._picture, patch, names[operation]))  # type: ignore[attr-defined]

    def grow_mask(self, pixels_: int) -> None:
        """Grow (positive) or shrink (negative) the mask by whole pixels; undoable."""
        mask = self._picture.mask
        if mask is None:
            return
        patch = grown(mask.values, pixels_)
        if patch is not None:
            text = "Grow mask" if pixels_ > 0 else "Shrink mask"
            self.undo_stack.push(EditMask(self._picture, patch, text))  # type: ignore[attr-defined]

    def _update_outline(self) -> None:
        mask = self._picture.mask
        self.view.set_mask_outline(QPainterPath() if mask is None else outline(mask.values))

    # -- outpainting -----------------------------------------------------------------------

    def expand_canvas(self, left: int, top: int, right: int, bottom: int) -> None:
        """Grow the canvas on each side; the new area is filled from the edge and masked."""
        from studio.engine.region import expand

        image = self.image()  # type: ignore[attr-defined]
        if image is None:
            raise ImageError("Open or generate a picture before expanding the canvas.")
        filled, _mask = expand(image, left, top, right, bottom)
        self.discard_staged()  # type: ignore[attr-defined]
        self.layer_edits.expand(left, top, right, bottom, qimage_from_pil(filled))

    def open_layers(self, size: tuple[int, int], layers: list, name: str = "") -> None:
        """Replace the picture with layered pixels (OpenRaster layers, bottom first)."""
        from PySide6.QtCore import QSize

        from studio.ui.canvas.commands import ChangePicture
        from studio.ui.canvas.layers import Layer, PictureState

        made = tuple(
            Layer(
                layer.name,
                qimage_from_pil(layer.image),
                QRect(layer.x, layer.y, layer.image.width, layer.image.height),
                layer.visible,
                layer.opacity,
            )
            for layer in layers
        )
        if not made:
            raise ImageError(f"{name or 'The file'} holds no layers.")
        self.discard_staged()  # type: ignore[attr-defined]
        before = self._picture.state()
        after = PictureState(QSize(*size), made, None)
        self.undo_stack.push(ChangePicture(self._picture, before, after, "Open layers"))  # type: ignore[attr-defined]
        self.fit()  # type: ignore[attr-defined]

    # -- what a job starts from --------------------------------------------------------------

    def generation_image(self) -> Image.Image | None:
        """What generating works on: the visible layers flattened, or the chosen layer alone."""
        index = self.source_layer
        if index is None or not 0 <= index < len(self._picture.layers):
            return self.image()  # type: ignore[attr-defined]
        flat = self._picture.flatten((self._picture.layers[index],))
        if flat is None:
            return None
        flat = flat.convertToFormat(QImage.Format.Format_RGB888)
        return Image.fromarray(pixels(flat, writable=False).copy(), "RGB")

    # -- previews where the result will go ---------------------------------------------------

    def set_preview_clip(self, clip: np.ndarray | None) -> None:
        """Only where `clip` (uint8, the preview rect's size) is nonzero is the preview drawn;
        None draws all of it."""
        self._preview_clip = clip

    def _preview_pixmap(self, rgb: np.ndarray, rect: QRect | None) -> QPixmap:
        image = qimage_from_array(np.ascontiguousarray(rgb[..., :3]))
        clip = self._preview_clip
        if clip is None or rect is None:
            return QPixmap.fromImage(image)
        scale = min(1.0, _PREVIEW_SIDE / max(rect.width(), rect.height()))
        width, height = max(1, round(rect.width() * scale)), max(1, round(rect.height() * scale))
        shown = image.scaled(
            width,
            height,
            Qt.AspectRatioMode.IgnoreAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        ).convertToFormat(QImage.Format.Format_RGBA8888)
        alpha = np.asarray(Image.fromarray(clip, "L").resize((width, height), Image.BILINEAR))
        pixels(shown)[..., 3] = alpha
        return QPixmap.fromImage(shown)

    def _preview_target(self, rect: QRect | None) -> QRectF | None:
        return None if rect is None else QRectF(rect)
