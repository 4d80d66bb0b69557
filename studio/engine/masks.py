"""Inpainting masks and compositing, in numpy and PIL only (no torch, cheap to import).

A mask is a PIL "L" image: 255 = repaint, 0 = keep, values between blend.

The promise to the user: after `composite` (or `paste_back`) through the mask grown by `grow`
and feathered by `feather`, every pixel farther than `feather` pixels (Euclidean) from every
nonzero pixel of the grown mask is bit-identical to the input image: the output differs from
the input only where the feathered mask is nonzero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops

from studio.errors import ImageError, ParameterError

# Fewer unmasked pixels than this and a colour estimate is noise, not a correction.
_MIN_MATCH_PIXELS = 256
_MAX_MATCH_PIXELS = 200_000
_EMPTY_MASK = "The mask is empty: paint the area to repaint."


# --- mask conversion -------------------------------------------------------------------------


def _as_mask(mask: Image.Image) -> Image.Image:
    """Any mode to "L": alpha when the image has real transparency, otherwise brightness."""
    if mask.mode == "L":
        return mask
    if mask.mode in ("I", "F") or mask.mode.startswith("I;16"):
        a = np.asarray(mask, dtype=np.float64)
        peak = float(a.max()) if a.size else 0.0
        if mask.mode == "F" and peak <= 1.0:
            a = a * 255.0
        elif peak > 255.0:
            a = a / 257.0
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    if mask.has_transparency_data:
        alpha = mask.convert("RGBA").getchannel("A")
        if alpha.getextrema() != (255, 255):
            return alpha
    return mask.convert("L")


def _as_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return _as_mask(image).convert("RGB")
    return image.convert("RGB")


def _check_same_size(image: Image.Image, mask: Image.Image) -> None:
    if image.size != mask.size:
        raise ImageError(
            f"The mask is {mask.width}x{mask.height} pixels but the image is "
            f"{image.width}x{image.height}: they must be the same size."
        )


def _l_image(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(a, dtype=np.uint8), "L")


# --- simple mask operations ------------------------------------------------------------------


def invert(mask: Image.Image) -> Image.Image:
    """Swap repaint and keep."""
    return ImageChops.invert(_as_mask(mask))


def from_alpha(image: Image.Image, *, transparent_is_repaint: bool = True) -> Image.Image:
    """A mask from an image's transparency: by default its transparent parts are repainted.

    With `transparent_is_repaint=False` the opaque parts are repainted instead, as for
    strokes painted on an empty layer.
    """
    if not image.has_transparency_data:
        raise ImageError(f"The {image.mode} image has no transparency to make a mask from.")
    alpha = image.convert("RGBA").getchannel("A")
    return ImageChops.invert(alpha) if transparent_is_repaint else alpha


def binarize(mask: Image.Image, threshold: int = 128) -> Image.Image:
    """Values at or above `threshold` become 255, the rest 0."""
    if not 0 <= threshold <= 256:
        raise ParameterError(f"The mask threshold must be between 0 and 256, not {threshold}.")
    return _as_mask(mask).point([255 if v >= threshold else 0 for v in range(256)])


def is_empty(mask: Image.Image) -> bool:
    """True when no pixel asks to be repainted."""
    return _as_mask(mask).getbbox() is None


def require_painted(mask: Image.Image) -> Image.Image:
    """The mask as "L"; refused with a sentence when no pixel asks to be repainted."""
    mask = _as_mask(mask)
    if mask.getbbox() is None:
        raise ParameterError(_EMPTY_MASK)
    return mask


# --- grow and feather ------------------------------------------------------------------------


def _dilate(a: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation by a flat disc: out[p] = max of a over pixels within `radius` of p.

    Pixels outside the array count as 0. The disc is split into one horizontal run per row
    offset; sliding maxima of every run length come from a doubling table, so the cost is
    O(radius) whole-image maxima rather than O(radius^2).
    """
    if radius <= 0:
        return a.copy()
    h, w = a.shape
    r = radius
    padded = np.pad(a, r)
    span = 2 * r + 1
    # levels[s][:, i] = max(padded[:, i : i + s]) for s a power of two.
    levels = {1: padded}
    size = 1
    while size * 2 <= span:
        prev = levels[size]
        levels[size * 2] = np.maximum(prev[:, :-size], prev[:, size:])
        size *= 2
    runs: dict[int, np.ndarray] = {}
    out = np.zeros_like(a)
    for dy in range(-r, r + 1):
        k = math.isqrt(r * r - dy * dy)
        run = runs.get(k)
        if run is None:
            length = 2 * k + 1
            s = 1 << (length.bit_length() - 1)
            level = levels[s]
            start = r - k
            run = np.maximum(
                level[:, start : start + w], level[:, start + length - s : start + length - s + w]
            )
            runs[k] = run
        np.maximum(out, run[r + dy : r + dy + h], out=out)
    return out


def _near_mask(a: np.ndarray, margin: int, operation: Callable[[np.ndarray], np.ndarray]):
    """Run a neighbourhood operation on the mask's bounding box plus `margin` only.

    Every operation here reaches at most `margin` pixels and maps an all-zero neighbourhood
    to 0, so the result equals running it on the whole image, for a fraction of the cost
    when a small mask sits on a large image.
    """
    rows = np.flatnonzero(a.any(axis=1))
    if rows.size == 0:
        return np.zeros_like(a)
    cols = np.flatnonzero(a.any(axis=0))
    height, width = a.shape
    top, bottom = max(0, rows[0] - margin), min(height, rows[-1] + 1 + margin)
    left, right = max(0, cols[0] - margin), min(width, cols[-1] + 1 + margin)
    out = np.zeros_like(a)
    out[top:bottom, left:right] = operation(a[top:bottom, left:right])
    return out


def _grown(a: np.ndarray, pixels: int) -> np.ndarray:
    if pixels == 0:
        return a.copy()
    if pixels > 0:
        return _near_mask(a, pixels, lambda part: _dilate(part, pixels))
    # Shrinking is growing the kept area; the image border is not kept area, so a mask
    # that touches the border stays there.
    return _near_mask(a, -pixels, lambda part: 255 - _dilate(255 - part, -pixels))


def grow(mask: Image.Image, pixels: int) -> Image.Image:
    """Grow the mask by a disc of radius `pixels` (Euclidean); a negative value shrinks it.

    Shrinking a painted mask to nothing is refused: the user painted something to repaint.
    """
    if pixels == 0:
        return _as_mask(mask)  # pictures are not changed in place: no copy needed
    a = np.asarray(_as_mask(mask), dtype=np.uint8)
    grown = _grown(a, pixels)
    if pixels < 0 and a.any() and not grown.any():
        raise ParameterError(
            f"The mask disappears when shrunk by {-pixels} pixels: shrink it less "
            "or paint a larger area."
        )
    return _l_image(grown)


def _box_blur(a: np.ndarray, half: int, axis: int) -> np.ndarray:
    """Mean over a window of 2*half+1 along `axis`, borders extended by their edge value."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half + 1, half)
    sums = np.cumsum(np.pad(a, pad, mode="edge"), axis=axis, dtype=np.float64)
    n = a.shape[axis]
    span = 2 * half + 1
    upper: list[slice] = [slice(None), slice(None)]
    lower: list[slice] = [slice(None), slice(None)]
    upper[axis], lower[axis] = slice(span, span + n), slice(0, n)
    out = sums[tuple(upper)] - sums[tuple(lower)]
    out /= span
    return out


def _feathered(a: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0:
        return a.copy()
    return _near_mask(a, pixels, lambda part: _feathered_part(part, pixels))


def _feathered_part(a: np.ndarray, pixels: int) -> np.ndarray:
    # Three box passes approximate a Gaussian and, unlike one, reach exactly zero: their
    # half-widths add up to `pixels`, so nothing spreads farther than that along an axis.
    blurred = a.astype(np.float64)
    for half in ((pixels + 2) // 3, (pixels + 1) // 3, pixels // 3):
        if half:
            blurred = _box_blur(blurred, half, 0)
            blurred = _box_blur(blurred, half, 1)
    # The box passes reach `pixels` along each axis, a little farther on diagonals; the disc
    # cut makes the limit Euclidean, and only drops tail values of about 1 % or less.
    reach = _dilate(np.where(a > 0, np.uint8(255), np.uint8(0)), pixels) > 0
    out = np.clip(np.rint(blurred), 0, 255).astype(np.uint8)
    out[~reach] = 0
    return out


def feather(mask: Image.Image, pixels: int) -> Image.Image:
    """Soften the mask edge with a near-Gaussian blur of radius `pixels`.

    Guarantee: a pixel whose Euclidean distance to every nonzero mask pixel is greater than
    `pixels` stays exactly 0, and a pixel whose square of half-width `pixels` holds only 255
    stays exactly 255. At a straight edge of a filled mask the value is about 128.
    """
    if pixels < 0:
        raise ParameterError(f"The mask feather must be 0 or more pixels, not {pixels}.")
    a = np.asarray(_as_mask(mask), dtype=np.uint8)
    return _l_image(_feathered(a, pixels))


# --- compositing -----------------------------------------------------------------------------


def composite(original: Image.Image, generated: Image.Image, mask: Image.Image) -> Image.Image:
    """Blend `generated` over `original` through the mask.

    Where the mask is 0 the result is bit-identical to `original`, where it is 255 to
    `generated`; in between it is the rounded linear mix.
    """
    mask = _as_mask(mask)
    _check_same_size(original, mask)
    _check_same_size(generated, mask)
    o = np.asarray(_as_rgb(original), dtype=np.uint16)
    g = np.asarray(_as_rgb(generated), dtype=np.uint16)
    m = np.asarray(mask, dtype=np.uint16)[..., None]
    # Integer arithmetic keeps both ends exact: (x * 255 + 127) // 255 == x. The sum never
    # exceeds 255 * 255 + 127, so uint16 holds it.
    out = (o * (255 - m) + g * m + 127) // 255
    return Image.fromarray(out.astype(np.uint8), "RGB")


def _trimmed_stats(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, (2.0, 98.0))
    core = values[(values >= low) & (values <= high)]
    if core.size == 0:
        core = values
    return float(core.mean()), float(core.std())


def _color_map(
    generated: np.ndarray, original: np.ndarray, outside: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel gain and offset taking `generated` to `original` where `outside` is set."""
    # A regular subsample estimates as well as every pixel of a large image, much faster.
    stride = max(1, math.isqrt(outside.size // _MAX_MATCH_PIXELS))
    if stride > 1 and int(outside[::stride, ::stride].sum()) >= _MIN_MATCH_PIXELS:
        generated, original = generated[::stride, ::stride], original[::stride, ::stride]
        outside = outside[::stride, ::stride]
    if int(outside.sum()) < _MIN_MATCH_PIXELS:
        return None
    g_all = generated[outside].astype(np.float64)
    o_all = original[outside].astype(np.float64)
    gains, offsets = np.ones(3), np.zeros(3)
    for c in range(3):
        g, o = g_all[:, c], o_all[:, c]
        # Clipped values carry no information about the shift.
        usable = (g > 0) & (g < 255) & (o > 0) & (o < 255)
        if int(usable.sum()) >= _MIN_MATCH_PIXELS:
            g, o = g[usable], o[usable]
        g_mean, g_std = _trimmed_stats(g)
        o_mean, o_std = _trimmed_stats(o)
        gain = o_std / g_std if g_std > 1.0 and o_std > 1.0 else 1.0
        # A VAE shifts colours a little; a large gain means the estimate is wrong.
        gains[c] = min(max(gain, 0.5), 2.0)
        offsets[c] = o_mean - gains[c] * g_mean
    return gains, offsets


def _apply_color_map(image: Image.Image, gains: np.ndarray, offsets: np.ndarray) -> Image.Image:
    out = np.asarray(image, dtype=np.float64) * gains + offsets
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


def match_colors(generated: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """Undo the global colour shift of the VAE round trip, learned where the mask is 0.

    Outside the mask the generated image should equal the original, so a per-channel gain
    and offset (from trimmed means and standard deviations) mapping one to the other is
    estimated there and applied to the whole generated image, clamped to 0..255. With too
    few unmasked pixels the generated image is returned unchanged.
    """
    mask = _as_mask(mask)
    _check_same_size(original, mask)
    _check_same_size(generated, mask)
    generated = _as_rgb(generated)
    found = _color_map(np.asarray(generated), np.asarray(_as_rgb(original)), np.asarray(mask) == 0)
    return generated if found is None else _apply_color_map(generated, *found)


# --- inpaint only the masked area ------------------------------------------------------------


@dataclass(frozen=True)
class MaskedRegion:
    """Part of the image that is generated, and the size it is generated at."""

    box: tuple[int, int, int, int]  # left, top, right, bottom in image pixels
    work_size: tuple[int, int]  # width, height given to the model; multiples of 8

    @property
    def box_size(self) -> tuple[int, int]:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, math.floor(value / multiple + 0.5) * multiple)


def _ceil_to(value: float, multiple: int) -> int:
    return max(multiple, math.ceil(value / multiple - 1e-9) * multiple)


def _fit_box(
    box: tuple[int, int, int, int], aspect: float, image_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Enlarge `box` (never shrink it) towards width/height == aspect, inside the image."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    image_w, image_h = image_size
    if width < height * aspect:
        new_w, new_h = min(image_w, math.ceil(height * aspect - 1e-9)), height
    else:
        new_w, new_h = width, min(image_h, math.ceil(width / aspect - 1e-9))
    left = min(max(left - (new_w - width) // 2, 0), image_w - new_w)
    top = min(max(top - (new_h - height) // 2, 0), image_h - new_h)
    return left, top, left + new_w, top + new_h


def masked_region(
    mask: Image.Image,
    image_size: tuple[int, int],
    *,
    padding: int,
    target: tuple[int, int] | int,
    multiple: int = 8,
) -> MaskedRegion:
    """The box to generate for "inpaint masked area only", and its work size.

    The box is the mask's bounding box plus `padding`, enlarged to the work size's aspect
    ratio (so resizing does not distort) and kept inside the image. `target` is either a
    side (the work area is about target*target, at the box's own aspect ratio) or a
    preferred (width, height); when the image cannot hold a box of that aspect ratio the
    work size takes the box's aspect ratio at the same area.
    """
    mask = _as_mask(mask)
    if mask.size != tuple(image_size):
        raise ImageError(
            f"The mask is {mask.width}x{mask.height} pixels but the image is "
            f"{image_size[0]}x{image_size[1]}: they must be the same size."
        )
    if padding < 0:
        raise ParameterError(f"The mask padding must be 0 or more pixels, not {padding}.")
    bbox = mask.getbbox()
    if bbox is None:
        raise ParameterError(_EMPTY_MASK)
    image_w, image_h = image_size
    left, top, right, bottom = bbox
    padded = (
        max(0, left - padding),
        max(0, top - padding),
        min(image_w, right + padding),
        min(image_h, bottom + padding),
    )
    pad_w, pad_h = padded[2] - padded[0], padded[3] - padded[1]
    if isinstance(target, (int, np.integer)):
        target = int(target)
        if target <= 0:
            raise ParameterError(f"The generation size must be positive, not {target}.")
        area = float(target * target)
        scale = math.sqrt(area / (pad_w * pad_h))
        work = _round_to(pad_w * scale, multiple), _round_to(pad_h * scale, multiple)
    else:
        if min(target) <= 0:
            raise ParameterError(f"The generation size must be positive, not {target}.")
        work = _round_to(target[0], multiple), _round_to(target[1], multiple)
        area = float(work[0] * work[1])
    box = _fit_box(padded, work[0] / work[1], image_size)
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    if abs(box_w * work[1] - box_h * work[0]) > max(work):
        # The image is too narrow for that aspect ratio: follow the box instead, rounding the
        # side the box cannot grow along so that the other side can make up the difference.
        aspect = box_w / box_h
        work_w = _round_to(math.sqrt(area * aspect), multiple)
        work_h = _round_to(math.sqrt(area / aspect), multiple)
        if box_w == image_w and box_h < image_h:
            work_h = _ceil_to(work_w / aspect, multiple)
        elif box_h == image_h and box_w < image_w:
            work_w = _ceil_to(work_h * aspect, multiple)
        work = work_w, work_h
        box = _fit_box(box, work_w / work_h, image_size)
    return MaskedRegion(box=box, work_size=work)


def crop_for_work(
    image: Image.Image, mask: Image.Image, region: MaskedRegion
) -> tuple[Image.Image, Image.Image]:
    """The image (LANCZOS) and mask (bilinear, no ringing) cut to the box, at the work size.

    Refused when the mask's size differs from the image's or nothing is painted: there would
    be nothing to inpaint.
    """
    mask = _as_mask(mask)
    _check_same_size(image, mask)
    require_painted(mask)
    image_part = _as_rgb(image).crop(region.box)
    mask_part = mask.crop(region.box)
    if image_part.size != region.work_size:
        image_part = image_part.resize(region.work_size, Image.Resampling.LANCZOS)
        mask_part = mask_part.resize(region.work_size, Image.Resampling.BILINEAR)
    return image_part, mask_part


def _paste(
    original: Image.Image,
    generated: Image.Image,
    blend: Image.Image,
    region: MaskedRegion,
    color_match: bool,
) -> Image.Image:
    """Composite `generated` (any size, resized to the box) into the box through `blend`.

    `blend` is the box-sized composite mask; outside the box the original is untouched.
    """
    original = _as_rgb(original)
    generated = _as_rgb(generated)
    if generated.size != region.box_size:
        generated = generated.resize(region.box_size, Image.Resampling.LANCZOS)
    result = original.copy()
    inner = blend.getbbox()
    if inner is None:
        return result
    original_part = original.crop(region.box)
    generated_part = generated.crop(inner)
    if color_match:
        found = _color_map(np.asarray(generated), np.asarray(original_part), np.asarray(blend) == 0)
        if found is not None:
            generated_part = _apply_color_map(generated_part, *found)
    mixed = composite(original_part.crop(inner), generated_part, blend.crop(inner))
    result.paste(mixed, (region.box[0] + inner[0], region.box[1] + inner[1]))
    return result


def paste_back(
    original: Image.Image,
    generated_work: Image.Image,
    mask: Image.Image,
    region: MaskedRegion,
    *,
    feather: int,
    color_match: bool = False,
) -> Image.Image:
    """Put a generated crop back into the full image through the mask feathered by `feather`.

    Pixels outside `region.box`, or farther than `feather` from every nonzero pixel of
    `mask`, are bit-identical to `original`. Give a region whose padding is at least
    `feather` or the blend is cut off at the box edge.
    """
    mask = _as_mask(mask)
    _check_same_size(original, mask)
    if feather < 0:
        raise ParameterError(f"The mask feather must be 0 or more pixels, not {feather}.")
    left, top, right, bottom = region.box
    # Feathering is local, so a margin of `feather` around the box gives the same values
    # inside the box as feathering the whole mask would.
    outer = (
        max(0, left - feather),
        max(0, top - feather),
        min(mask.width, right + feather),
        min(mask.height, bottom + feather),
    )
    blurred = _feathered(np.asarray(mask.crop(outer), dtype=np.uint8), feather)
    x, y = left - outer[0], top - outer[1]
    blend = _l_image(blurred[y : y + bottom - top, x : x + right - left])
    return _paste(original, generated_work, blend, region, color_match)
