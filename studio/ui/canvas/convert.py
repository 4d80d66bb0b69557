"""PIL / numpy <-> QImage through numpy buffers.

PIL.ImageQt ties itself to one Qt binding and shares buffers whose lifetime is easy to get
wrong; here every QImage owns its pixels (one copy in, one copy out), so nothing has to be
kept alive by hand.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtGui import QImage


def pixels(image: QImage, writable: bool = True) -> np.ndarray:
    """An (H, W, channels) or (H, W) view of `image`'s own pixels, without row padding.

    The view stays valid while `image` is alive and not detached: callers that write keep
    the QImage to themselves, so Qt never detaches it under the view.
    """
    depth = image.depth() // 8
    height, width, stride = image.height(), image.width(), image.bytesPerLine()
    buffer = image.bits() if writable else image.constBits()
    rows = np.frombuffer(buffer, np.uint8).reshape(height, stride)
    view = rows[:, : width * depth]
    return view if depth == 1 else view.reshape(height, width, depth)


def qimage_from_array(array: np.ndarray) -> QImage:
    """A QImage copy of an (H, W) uint8, (H, W, 3) RGB or (H, W, 4) RGBA array."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {array.dtype}")
    formats = {
        2: QImage.Format.Format_Grayscale8,
        3: QImage.Format.Format_RGB888,
        4: QImage.Format.Format_RGBA8888,
    }
    channels = 2 if array.ndim == 2 else array.shape[2]
    if channels not in formats or array.ndim not in (2, 3):
        raise ValueError(f"expected H x W, H x W x 3 or H x W x 4 pixels, got {array.shape}")
    height, width = array.shape[:2]
    image = QImage(width, height, formats[channels])
    pixels(image)[...] = array
    return image


def qimage_from_pil(image: Image.Image) -> QImage:
    """A QImage copy of a PIL image: RGBA8888 when it has transparency, RGB888 otherwise."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "RGBA" if has_alpha else "RGB"
    return qimage_from_array(np.asarray(image.convert(mode) if image.mode != mode else image))


def array_from_qimage(image: QImage, channels: int = 3) -> np.ndarray:
    """An (H, W, 3) RGB or (H, W, 4) RGBA uint8 copy of any QImage."""
    target = QImage.Format.Format_RGB888 if channels == 3 else QImage.Format.Format_RGBA8888
    converted = image if image.format() == target else image.convertToFormat(target)
    return pixels(converted, writable=False).copy()


def pil_from_qimage(image: QImage) -> Image.Image:
    """An RGB PIL copy of a QImage (transparency is dropped)."""
    return Image.fromarray(array_from_qimage(image, 3), "RGB")
