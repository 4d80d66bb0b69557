"""Canvas: the image at the centre of the window, its inpainting mask and generated results."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from PIL import Image
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QGuiApplication,
    QImage,
    QPixmap,
    QUndoStack,
)
from PySide6.QtWidgets import QVBoxLayout, QWidget

from studio.errors import ImageError
from studio.ui.canvas.actions import bind_staging_keys, make_actions
from studio.ui.canvas.commands import ChangePicture, EditMask, InvertMask
from studio.ui.canvas.convert import pixels, qimage_from_pil
from studio.ui.canvas.layer_edits import LayerEdits
from studio.ui.canvas.layers import Layer, Picture, PictureState
from studio.ui.canvas.mask import MaskPatch, Stroke, patch_between
from studio.ui.canvas.toolbar import MAX_BRUSH_SIZE, CanvasToolbar, StagingBar
from studio.ui.canvas.tools import CanvasTools
from studio.ui.canvas.view import CanvasView

RectLike = QRect | tuple[int, int, int, int] | None


class Canvas(QWidget, CanvasTools):
    """The picture being inpainted: image layers, a painted mask, live previews, staged results.

    Signals: imageChanged(), maskChanged(), stagingChanged(), fileDropped(str) (the window
    decides what a dropped file means), zoomChanged(float).

    Image: open_image(), has_image(), image() / flattened() (visible layers as RGB),
    image_size(), layers(), set_layer_visible().
    Mask: mask() ("L", 255 = repaint, None when empty), set_mask(), clear_mask(),
    invert_mask(), paint_stroke() (a stroke from code), set_mask_color().
    Tools: set_tool("brush" | "eraser" | "pan"), tool(), set_brush_size(),
    brush_size(), set_brush_hardness(), brush_hardness().
    Jobs: show_preview(rgb | None), set_preview_rect(), stage(images, rect=None),
    staged_count(), staged_index(), staged_image(), next_staged(), previous_staged(),
    accept_staged(), discard_staged().
    View: fit(), actual_size(), zoom(); `view` is the CanvasView (for tests: send mouse
    events to canvas.view.viewport()).
    Region (tools.py): region(), set_region(), fit_region_to_mask(), reset_region(), and the
    signal regionEdited(rect | None) when the user moves it. Selections: apply_selection(),
    grow_mask(). Outpainting: expand_canvas(). Layers: `layer_edits` (layer_edits.py),
    layer_list(), generation_image() (the visible layers, or `source_layer` alone).
    Every edit of the picture goes through `undo_stack`; the window wires Ctrl+Z to it.
    Rects are (x, y, width, height) in image pixels.
    """

    imageChanged = Signal()
    maskChanged = Signal()
    stagingChanged = Signal()
    fileDropped = Signal(str)
    zoomChanged = Signal(float)
    regionEdited = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self._picture = Picture(self)
        self._staged: list[QImage] = []
        self._staged_names: list[str] = []
        self._staged_pixmaps: dict[int, QPixmap] = {}
        self._staged_index = 0
        self._staged_rect: QRect | None = None
        self._preview_rect: QRect | None = None

        self._actions = make_actions(self)
        self.toolbar = CanvasToolbar(self._actions, self)
        self.view = CanvasView(self._picture, self)
        self.layer_edits = LayerEdits(self._picture, self.undo_stack)
        self._init_tools()
        # The staging bar floats over the bottom of the view rather than taking a row, so
        # staging a result never resizes the view under the user's pointer.
        self.staging_bar = StagingBar(self)
        self.staging_bar.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.view, 1)
        self.setFocusProxy(self.view)

        self._picture.layersChanged.connect(self.imageChanged)
        self._picture.maskChanged.connect(lambda _rect: self.maskChanged.emit())
        self.view.strokeFinished.connect(self._stroke_finished)
        self.view.zoomChanged.connect(self._zoom_changed)
        self.view.filesDropped.connect(self._files_dropped)
        self.view.imageDropped.connect(lambda image: self._open_qimage(image, "Dropped image"))
        self._connect_toolbar()
        self.set_tool("brush")
        self.set_brush_size(64)
        self.set_brush_hardness(0.8)
        self.toolbar.show_zoom(1.0)

    def _connect_toolbar(self) -> None:
        bar, staging = self.toolbar, self.staging_bar
        bar.sizeChosen.connect(self.set_brush_size)
        bar.operationChosen.connect(lambda op: setattr(self.view, "selection_operation", op))
        bar.hardnessChosen.connect(self.set_brush_hardness)
        staging.previous_button.clicked.connect(self.previous_staged)
        staging.next_button.clicked.connect(self.next_staged)
        staging.accept_button.clicked.connect(self.accept_staged)
        staging.discard_button.clicked.connect(self.discard_staged)

    def action(self, name: str) -> QAction:
        """One of the canvas's actions by name (e.g. "fit", "paste", "accept_staged"), for menus."""
        return self._actions[name]

    # -- image ----------------------------------------------------------------------------

    def open_image(self, image: Image.Image, name: str = "") -> None:
        """Replace the picture with `image` (one undo step), clear the mask and fit the view.

        Staged results belonged to the old picture (and to its size): they are discarded.
        """
        self._open_qimage(qimage_from_pil(image), name)

    def _open_qimage(self, image: QImage, name: str) -> None:
        if image.isNull():
            raise ImageError("The image is empty, so there is nothing to open.")
        if image.format() not in (QImage.Format.Format_RGB888, QImage.Format.Format_RGBA8888):
            alpha = image.hasAlphaChannel()
            image = image.convertToFormat(
                QImage.Format.Format_RGBA8888 if alpha else QImage.Format.Format_RGB888
            )
        size = QSize(image.size())
        layer = Layer(name or "Image", image, QRect(0, 0, size.width(), size.height()))
        after = PictureState(size, (layer,), None)
        self.discard_staged()
        self.undo_stack.push(
            ChangePicture(self._picture, self._picture.state(), after, "Open image")
        )
        self.fit()

    def has_image(self) -> bool:
        return self._picture.size is not None

    def image_size(self) -> tuple[int, int] | None:
        """(width, height) of the picture, or None when nothing is open."""
        size = self._picture.size
        return None if size is None else (size.width(), size.height())

    def image(self) -> Image.Image | None:
        """The visible layers flattened to RGB at full resolution (no mask, preview or staging)."""
        flat = self._picture.flattened()
        if flat is None:
            return None
        if flat.format() != QImage.Format.Format_RGB888:
            flat = flat.convertToFormat(QImage.Format.Format_RGB888)
        return Image.fromarray(pixels(flat, writable=False).copy(), "RGB")

    def flattened(self) -> Image.Image | None:
        """Same as image(): what the user sees, for export."""
        return self.image()

    def layers(self) -> list[tuple[str, bool]]:
        """(name, visible) for each layer, bottom to top."""
        return [(layer.name, layer.visible) for layer in self._picture.layers]

    def layer_list(self) -> tuple[Layer, ...]:
        """The layers themselves (frozen values), bottom to top."""
        return self._picture.layers

    def set_layer_visible(self, index: int, visible: bool) -> None:
        """Show or hide a layer (one undo step)."""
        self.layer_edits.set_visible(index, visible)

    def paste(self) -> None:
        """Open the clipboard's image (undoable); a copied file goes out as fileDropped."""
        clipboard = QGuiApplication.clipboard()
        data = clipboard.mimeData()
        if data is not None and data.hasImage():
            self._open_qimage(clipboard.image(), "Pasted image")
        elif data is not None and data.hasUrls():
            self._files_dropped([url.toLocalFile() for url in data.urls() if url.isLocalFile()])

    def _files_dropped(self, paths: Sequence[str]) -> None:
        for path in paths:
            self.fileDropped.emit(path)

    # -- mask -----------------------------------------------------------------------------

    def mask(self) -> Image.Image | None:
        """The mask as an "L" image the size of image() (255 = repaint), or None when empty."""
        mask = self._picture.mask
        if mask is None or mask.is_empty():
            return None
        return Image.fromarray(mask.values.copy(), "L")

    def set_mask(self, mask: Image.Image) -> None:
        """Replace the mask (one undo step); it must be the size of the image."""
        if self._picture.mask is None:
            raise ImageError("Open an image before setting a mask.")
        width, height = self.image_size()
        if mask.size != (width, height):
            raise ImageError(
                f"The mask is {mask.size[0]}x{mask.size[1]} but the image is {width}x{height}; "
                "they must be the same size."
            )
        values = np.asarray(mask.convert("L") if mask.mode != "L" else mask)
        self._push_mask(patch_between(self._picture.mask.values, values), "Set mask")

    def clear_mask(self) -> None:
        if self._picture.mask is None:
            return
        current = self._picture.mask.values
        self._push_mask(patch_between(current, np.zeros_like(current)), "Clear mask")

    def invert_mask(self) -> None:
        if self._picture.mask is not None:
            self.undo_stack.push(InvertMask(self._picture))

    def paint_stroke(self, points: Sequence[tuple[float, float]], erase: bool = False) -> None:
        """Paint (or erase) through image-pixel points with the current brush, as one undo step."""
        if self._picture.mask is None or not points:
            return
        stroke = Stroke(self._picture.mask, self.brush_size(), self.brush_hardness(), erase)
        for x, y in points:
            stroke.add(QPointF(x, y))
        self._push_mask(stroke.finish(), "Erase mask" if erase else "Paint mask")

    def set_mask_color(self, colour: QColor) -> None:
        """Tint of the mask overlay (drawn at half opacity)."""
        if self._picture.mask is not None:
            self._picture.mask.set_tint(colour)
            self.view.viewport().update()

    def _stroke_finished(self, patch: MaskPatch) -> None:
        self._push_mask(patch, "Erase mask" if self.tool() == "eraser" else "Paint mask")

    def _push_mask(self, patch: MaskPatch | None, text: str) -> None:
        if patch is not None:
            self.undo_stack.push(EditMask(self._picture, patch, text))

    # -- tools ----------------------------------------------------------------------------

    def set_tool(self, tool: str) -> None:
        """ "brush" paints the mask, "eraser" removes it, "pan" drags the view."""
        self.view.set_tool(tool)
        self._actions[tool].setChecked(True)

    def tool(self) -> str:
        return self.view.tool

    def set_brush_size(self, pixels: int) -> None:
        """Brush diameter in image pixels."""
        size = max(1, min(int(pixels), MAX_BRUSH_SIZE))
        self.view.set_brush(size, self.view.brush_hardness)
        self.toolbar.show_size(size)

    def brush_size(self) -> int:
        return int(self.view.brush_size)

    def set_brush_hardness(self, hardness: float) -> None:
        """0 = soft edge fading over the whole radius, 1 = hard edge."""
        hardness = max(0.0, min(1.0, float(hardness)))
        self.view.set_brush(self.view.brush_size, hardness)
        self.toolbar.show_hardness(hardness)

    def brush_hardness(self) -> float:
        return self.view.brush_hardness

    # -- preview and staging --------------------------------------------------------------

    def show_preview(self, rgb: np.ndarray | None) -> None:
        """Show a running job's H x W x 3 uint8 preview stretched over the preview rect; None hides it."""
        if rgb is None:
            self.view.show_preview(None)
            return
        pixmap = self._preview_pixmap(rgb, self._preview_rect)
        self.view.show_preview(pixmap, self._target(self._preview_rect))

    def set_preview_rect(self, rect: RectLike = None) -> None:
        """Where previews go, in image pixels (the whole image by default, or with None)."""
        self._preview_rect = _as_rect(rect)

    def stage(
        self,
        images: Sequence[Image.Image],
        rect: RectLike = None,
        names: Sequence[str] | None = None,
    ) -> None:
        """Show results awaiting accept/discard; `rect` places them (default: the whole image);
        `names` are what their layers will be called when accepted."""
        self._staged = [qimage_from_pil(image) for image in images]
        self._staged_names = list(names or [])
        self._staged_pixmaps = {}
        self._staged_index = 0
        self._staged_rect = _as_rect(rect)
        self.view.show_preview(None)  # the results replace the job's last preview
        self._show_staged()

    def staged_count(self) -> int:
        return len(self._staged)

    def staged_index(self) -> int:
        return self._staged_index

    def staged_image(self) -> Image.Image | None:
        """The result on show, as RGB, or None."""
        if not self._staged:
            return None
        image = self._staged[self._staged_index].convertToFormat(QImage.Format.Format_RGB888)
        return Image.fromarray(pixels(image, writable=False).copy(), "RGB")

    def next_staged(self) -> None:
        if self._staged:
            self._staged_index = (self._staged_index + 1) % len(self._staged)
            self._show_staged()

    def previous_staged(self) -> None:
        if self._staged:
            self._staged_index = (self._staged_index - 1) % len(self._staged)
            self._show_staged()

    def accept_staged(self) -> None:
        """The result on show becomes a new top layer and the mask clears, as one undo step."""
        if not self._staged:
            return
        image = self._staged[self._staged_index]
        before = self._picture.state()
        size = self._picture.size or QSize(image.size())
        rect = self._staged_rect or QRect(0, 0, size.width(), size.height())
        index = self._staged_index
        names = self._staged_names
        name = names[index] if index < len(names) and names[index] else self._next_result_name()
        layer = Layer(name, image, rect)
        after = PictureState(size, (*self._picture.layers, layer), None)
        fresh = self._picture.size is None
        self._staged = []
        self.undo_stack.push(ChangePicture(self._picture, before, after, "Accept result"))
        self._show_staged()
        if fresh:
            self.fit()

    def discard_staged(self) -> None:
        if self._staged:
            self._staged = []
            self._show_staged()

    def _next_result_name(self) -> str:
        numbers = [
            int(m.group(1))
            for layer in self._picture.layers
            if (m := re.fullmatch(r"Result (\d+)", layer.name))
        ]
        return f"Result {max(numbers, default=0) + 1}"

    def _show_staged(self) -> None:
        count = len(self._staged)
        if count == 0:
            self._staged_pixmaps = {}
            self._staged_index = 0
            self.view.show_staged(None)
        else:
            index = self._staged_index
            if index not in self._staged_pixmaps:
                self._staged_pixmaps[index] = QPixmap.fromImage(self._staged[index])
            rect = self._staged_rect
            if rect is None and not self.has_image():
                rect = QRect(0, 0, self._staged[index].width(), self._staged[index].height())
            self.view.show_staged(self._staged_pixmaps[index], self._target(rect))
            self.staging_bar.show_position(index, count)
        self.staging_bar.setVisible(count > 0)
        self._place_staging_bar()
        bind_staging_keys(self._actions, count > 0)
        self.stagingChanged.emit()

    def _target(self, rect: QRect | None) -> QRectF | None:
        return None if rect is None else QRectF(rect)

    # -- view -----------------------------------------------------------------------------

    def fit(self) -> None:
        """Zoom so the whole image shows."""
        self.view.fit()

    def actual_size(self) -> None:
        """Zoom to 100 %: one image pixel per screen pixel."""
        self.view.actual_size()

    def zoom(self) -> float:
        return self.view.zoom()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_staging_bar()

    def _place_staging_bar(self) -> None:
        bar, area = self.staging_bar, self.view.geometry()
        if area.height() == 0:  # not laid out yet: place it where the view will be
            area = QRect(
                0,
                self.toolbar.sizeHint().height(),
                self.width(),
                self.height() - self.toolbar.sizeHint().height(),
            )
        hint = bar.sizeHint()
        width = min(hint.width(), area.width())
        bar.setGeometry(
            area.left() + (area.width() - width) // 2,
            area.bottom() - hint.height() - 12,
            width,
            hint.height(),
        )
        bar.raise_()

    def _zoom_changed(self, zoom: float) -> None:
        self.toolbar.show_zoom(zoom)
        self.zoomChanged.emit(zoom)


def _as_rect(rect: RectLike) -> QRect | None:
    if rect is None or isinstance(rect, QRect):
        return rect
    x, y, width, height = rect
    return QRect(int(x), int(y), int(width), int(height))
