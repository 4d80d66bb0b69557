"""Safe image loading: size limits before decoding, every pixel mode to RGB, masks."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from studio.errors import ImageError

log = logging.getLogger(__name__)

# Larger images are refused before any pixel is decoded (a small file can claim a huge size).
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024

_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I;16S")


def load_image(
    path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Load an image file as a fully decoded RGB image, upright, with the file closed."""
    return to_rgb(_load(Path(path), max_pixels))


def load_mask(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Load a mask as mode "L" where white (255) marks the area to repaint.

    An image with transparency gives its transparent parts; any other image gives its luminance.
    """
    path = Path(path)
    image = _load(path, max_pixels)
    if _has_transparency(image):
        mask = mask_from_alpha(image)
    elif image.mode == "L":
        mask = image
    else:
        mask = to_rgb(image).convert("L")
    if size is not None and tuple(size) != mask.size:
        raise ImageError(
            f"{path.name} is {mask.width}x{mask.height} but the image is {size[0]}x{size[1]}."
        )
    return mask


def mask_from_alpha(image: Image.Image) -> Image.Image:
    """The transparent parts of an image as a mode "L" mask (255 = fully transparent)."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode not in _ALPHA_MODES:
        raise ImageError(f"The mask image (mode {image.mode}) has no transparency to use.")
    alpha = image.getchannel("A")
    return Image.eval(alpha, lambda value: 255 - value)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any pixel mode to 8-bit RGB; transparency is composited onto white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        log.info("Compositing a %s image with transparency onto white.", mode)
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return _deep_to_8bit(image).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(f"Images in pixel mode {mode} are not supported.") from exc


def _deep_to_8bit(image: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float single-channel image to mode "L"."""
    values = np.asarray(image).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    if values.size == 0:
        return Image.new("L", image.size)
    low, high = float(values.min()), float(values.max())
    if image.mode == "F" and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif image.mode == "F" and low >= 0.0 and high <= 255.0:
        scaled = values
    elif low >= 0.0 and high <= 65535.0:
        # 16-bit data (also what "I" holds when it comes from a 16-bit file): full range.
        scaled = values / 257.0
    else:
        # Anything else (negative or wider than 16 bits): stretch what is there.
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _has_transparency(image: Image.Image) -> bool:
    if image.mode == "P":
        return "transparency" in image.info and _has_transparency(image.convert("RGBA"))
    if image.mode not in _ALPHA_MODES:
        return False
    low, _high = image.getchannel("A").getextrema()
    return low < 255


def _load(path: Path, max_pixels: int) -> Image.Image:
    """Open, check the claimed size, decode fully and apply EXIF orientation."""
    if not path.exists():
        raise ImageError(f"The image {path.name} was not found in {path.parent}.")
    if not path.is_file():
        raise ImageError(f"{path} is a folder, not an image file.")
    try:
        # Our own limit is the one that counts; PIL's global warning would only add noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                _check_size(path, opened.size, max_pixels)
                opened.load()
                try:
                    image = ImageOps.exif_transpose(opened)
                except Exception:  # a damaged EXIF block must not make the pixels unusable
                    log.warning("Ignoring unreadable EXIF orientation in %s.", path.name)
                    image = opened.copy()
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path.name} is too large to open safely.") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path.name} is not an image file Studio can read.") from exc
    except PermissionError as exc:
        raise ImageError(f"{path.name} cannot be read: permission denied.") from exc
    except MemoryError as exc:
        raise ImageError(f"{path.name} is too large to fit in memory.") from exc
    except ValueError as exc:
        if "too large" not in str(exc).lower():  # PIL's "Decompressed Data Too Large"
            raise ImageError(f"{path.name} is damaged or incomplete and cannot be read.") from exc
        raise ImageError(
            f"{path.name} holds a text chunk too large to read safely; it was not opened."
        ) from exc
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, EOFError, ...
        raise ImageError(f"{path.name} is damaged or incomplete and cannot be read.") from exc
    return image


def _check_size(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"{path.name} is {width}x{height} pixels, more than the limit of "
            f"{max_pixels / 2**20:g} megapixels."
        )
