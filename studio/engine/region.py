"""The generation region: the part of a larger picture a job works on, and outpainting's fill.

A 4000x3000 photo and a 512x512 picture cost the same per job because the model never sees
the photo: the region is cut out, scaled to the model's native size (aspect kept, multiples
of 8), generated there, and scaled back into place. numpy and PIL only (cheap to import:
the window uses it too).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

from studio.engine.masks import MaskedRegion
from studio.errors import ImageError, ParameterError

MIN_WORK_SIDE = 64


def work_size(width: int, height: int, target: int, multiple: int = 8) -> tuple[int, int]:
    """A size with the aspect ratio of `width` x `height` and about `target`² pixels.

    Each side is a multiple of `multiple` and at least MIN_WORK_SIDE; a picture smaller
    than the target is still generated at the target (models draw badly below their size).
    """
    if width <= 0 or height <= 0:
        raise ParameterError(f"The generation region must have a size, not {width}x{height}.")
    if target <= 0:
        raise ParameterError(f"The generation size must be positive, not {target}.")
    scale = math.sqrt(target * target / (width * height))
    side_w = max(MIN_WORK_SIDE, round(width * scale / multiple) * multiple)
    side_h = max(MIN_WORK_SIDE, round(height * scale / multiple) * multiple)
    return side_w, side_h


def region_box(
    x: int, y: int, width: int, height: int, picture: tuple[int, int] | None
) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the region, clipped to the picture.

    A width or height of 0 means the whole picture; with no picture and no size there is
    no region (None): the job makes an image of its own size.
    """
    if width < 0 or height < 0:
        raise ParameterError(f"The generation region cannot be {width}x{height} pixels.")
    if width == 0 or height == 0:
        if picture is None:
            return None
        return (0, 0, picture[0], picture[1])
    box = (x, y, x + width, y + height)
    if picture is None:
        return box
    left, top = max(0, box[0]), max(0, box[1])
    right, bottom = min(picture[0], box[2]), min(picture[1], box[3])
    if right - left < 1 or bottom - top < 1:
        raise ParameterError(
            f"The generation region {width}x{height} at ({x}, {y}) lies outside the "
            f"{picture[0]}x{picture[1]} picture: move it onto the picture."
        )
    return (left, top, right, bottom)


def region_for(box: tuple[int, int, int, int], target: int | None) -> MaskedRegion:
    """The region of `box`, worked on at about `target`² pixels (None: as it is, pixel for
    pixel; whatever works on it then sizes it for the model itself)."""
    width, height = box[2] - box[0], box[3] - box[1]
    size = (width, height) if target is None else work_size(width, height, target)
    return MaskedRegion(box=box, work_size=size)


def cut(image: Image.Image, region: MaskedRegion, *, mask: bool = False) -> Image.Image:
    """The region's pixels at its work size (LANCZOS for pictures, bilinear for masks)."""
    if region.box == (0, 0, *image.size) and region.work_size == image.size:
        return image  # all of it, as it is (pictures are never changed in place)
    part = image.crop(region.box)
    if part.size != region.work_size:
        method = Image.Resampling.BILINEAR if mask else Image.Resampling.LANCZOS
        part = part.resize(region.work_size, method)
    return part


def scale_back(image: Image.Image, region: MaskedRegion) -> Image.Image:
    """A generated image brought back to the size of the region's box."""
    if image.size == region.box_size:
        return image
    return image.resize(region.box_size, Image.Resampling.LANCZOS)


# --- outpainting ---------------------------------------------------------------------------

MAX_EXPAND = 8192


def expand(
    image: Image.Image, left: int, top: int, right: int, bottom: int
) -> tuple[Image.Image, Image.Image]:
    """The picture grown by the given pixels on each side, and the mask of the new area.

    The new area is filled from the picture's edge (each new pixel takes the nearest edge
    pixel, then is blurred towards the average colour of that edge), so the model starts
    from the picture's own colours rather than from black.
    """
    sides = {"left": left, "top": top, "right": right, "bottom": bottom}
    for name, value in sides.items():
        if not 0 <= value <= MAX_EXPAND:
            raise ParameterError(
                f"Outpainting adds 0 to {MAX_EXPAND} pixels a side, not {value} on the {name}."
            )
    if not any(sides.values()):
        raise ParameterError("Outpainting needs at least one side to grow: give it some pixels.")
    if image.width < 1 or image.height < 1:
        raise ImageError("The picture to outpaint is empty.")
    rgb = np.asarray(image.convert("RGB"))
    height, width = rgb.shape[:2]
    # Nearest edge pixel everywhere in the new area.
    filled = np.pad(rgb, ((top, bottom), (left, right), (0, 0)), mode="edge")
    new_h, new_w = filled.shape[:2]
    # Far from the edge, streaks of one pixel's colour look like a glitch: fade them towards
    # a blur of the edge, more the farther out a pixel lies. The blur is taken from a small
    # copy, so a 12-megapixel photo costs what its new strips cost.
    radius = max(4, min(width, height) // 8)
    step = max(1, radius // 4)
    small = Image.fromarray(filled).resize(
        (max(1, new_w // step), max(1, new_h // step)), Image.Resampling.BOX
    )
    small = small.filter(ImageFilter.BoxBlur(max(1, radius // step)))
    strips = (
        (0, top, 0, new_w),
        (top + height, new_h, 0, new_w),
        (top, top + height, 0, left),
        (top, top + height, left + width, new_w),
    )
    for y0, y1, x0, x1 in strips:
        if y1 <= y0 or x1 <= x0:
            continue
        ys, xs = np.arange(y0, y1), np.arange(x0, x1)
        dy = np.maximum(np.maximum(top - ys, ys - (top + height - 1)), 0).astype(np.float32)
        dx = np.maximum(np.maximum(left - xs, xs - (left + width - 1)), 0).astype(np.float32)
        weight = np.clip(np.hypot(dy[:, None], dx[None, :]) / radius, 0.0, 1.0)[..., None]
        scale_x, scale_y = small.width / new_w, small.height / new_h
        box = (x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y)
        blurred = np.asarray(
            small.resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR, box=box), np.float32
        )
        near = filled[y0:y1, x0:x1].astype(np.float32)
        mixed = near * (1.0 - weight) + blurred * weight
        filled[y0:y1, x0:x1] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    mask = np.full((new_h, new_w), 255, dtype=np.uint8)
    mask[top : top + height, left : left + width] = 0
    return Image.fromarray(filled, "RGB"), Image.fromarray(mask, "L")
