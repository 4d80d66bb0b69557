"""Safe image loading: every bad file gives a clear ImageError, every pixel mode a correct RGB."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.errors import ImageError, StudioError
from studio.formats.images import load_image, load_mask, mask_from_alpha, to_rgb


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _with_claimed_size(png: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims another size (IHDR data starts at byte 16, its CRC at 29)."""
    header = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + header + struct.pack(">I", zlib.crc32(header)) + png[33:]


def _pixel(image: Image.Image, xy: tuple[int, int] = (0, 0)) -> tuple[int, ...]:
    return tuple(image.getpixel(xy))


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"photo\.png was not found"):
        load_image(tmp_path / "photo.png")


def test_folder_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_random_bytes_are_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_bytes(os.urandom(2000))
    with pytest.raises(ImageError, match=r"notes\.png is not an image file"):
        load_image(path)


def test_truncated_png_is_reported_as_damaged(tmp_path: Path) -> None:
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    data = _png_bytes(noisy)
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png is damaged or incomplete"):
        load_image(path)


def test_errors_are_studio_errors(tmp_path: Path) -> None:
    with pytest.raises(StudioError):
        load_image(tmp_path / "nothing.png")


@pytest.mark.parametrize("size", [(9000, 8000), (60000, 60000)])
def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path, size: tuple) -> None:
    # 72 megapixels is over our limit; 3600 megapixels is also over PIL's own hard limit.
    path = tmp_path / "bomb.png"
    path.write_bytes(_with_claimed_size(_png_bytes(Image.new("L", (8, 8))), *size))
    with pytest.raises(ImageError, match=r"bomb\.png is (too large|9000x8000 pixels)"):
        load_image(path)
    with pytest.raises(ImageError, match=r"bomb\.png"):
        load_mask(path)


def test_pixel_limit_is_settable(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (20, 20)).save(path)
    with pytest.raises(ImageError, match=r"small\.png is 20x20 pixels, more than the limit"):
        load_image(path, max_pixels=399)
    assert load_image(path, max_pixels=400).size == (20, 20)


def test_rgb_is_loaded_fully_and_file_closed(tmp_path: Path) -> None:
    path = tmp_path / "red.png"
    Image.new("RGB", (4, 3), (200, 10, 10)).save(path)
    image = load_image(path)
    path.unlink()  # pixels must not depend on the file any more
    assert image.mode == "RGB" and image.size == (4, 3)
    assert _pixel(image) == (200, 10, 10)


def test_rgba_is_composited_onto_white(tmp_path: Path) -> None:
    source = Image.new("RGBA", (3, 1))
    source.putpixel((0, 0), (255, 0, 0, 255))
    source.putpixel((1, 0), (0, 0, 0, 0))
    source.putpixel((2, 0), (0, 0, 0, 128))
    path = tmp_path / "cut-out.png"
    source.save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    assert _pixel(image, (0, 0)) == (255, 0, 0)
    assert _pixel(image, (1, 0)) == (255, 255, 255)
    assert all(abs(v - 127) <= 1 for v in _pixel(image, (2, 0)))


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "depth.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")  # really stored as 16-bit
    image = load_image(path)
    assert image.mode == "RGB"
    assert _pixel(image, (0, 0)) == (0, 0, 0)
    assert _pixel(image, (1, 0)) == (128, 128, 128)
    assert _pixel(image, (2, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([[0, 32768, 65535]], dtype=np.int32), (0, 128, 255)),
        (np.array([[0.0, 0.5, 1.0]], dtype=np.float32), (0, 128, 255)),
        (np.array([[-10.0, 0.0, 10.0]], dtype=np.float32), (0, 128, 255)),
    ],
)
def test_deep_modes_in_memory(array: np.ndarray, expected: tuple) -> None:
    image = to_rgb(Image.fromarray(array))
    assert tuple(image.getpixel((x, 0))[0] for x in range(3)) == expected


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)
    image = load_image(path)
    red, green, blue = _pixel(image, (8, 8))
    assert image.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_palette_with_transparency(tmp_path: Path) -> None:
    source = Image.new("P", (2, 1))
    source.putpalette([0, 0, 255, 10, 10, 10] + [0] * 762)
    source.putpixel((0, 0), 0)
    source.putpixel((1, 0), 1)
    source.info["transparency"] = 1
    path = tmp_path / "icon.png"
    source.save(path, transparency=1)
    image = load_image(path)
    assert _pixel(image, (0, 0)) == (0, 0, 255)
    assert _pixel(image, (1, 0)) == (255, 255, 255)


@pytest.mark.parametrize(("mode", "value", "expected"), [("L", 77, 77), ("1", 1, 255)])
def test_grayscale_and_bilevel(tmp_path: Path, mode: str, value: int, expected: int) -> None:
    path = tmp_path / f"gray-{mode}.png"
    Image.new(mode, (2, 2), value).save(path)
    assert _pixel(load_image(path)) == (expected,) * 3


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    source = Image.new("RGB", (40, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    path = tmp_path / "phone.jpg"
    source.save(path, exif=exif)
    assert load_image(path).size == (20, 40)


# --- masks ---------------------------------------------------------------------------------


def test_mask_from_grayscale_keeps_values(tmp_path: Path) -> None:
    source = Image.new("L", (2, 1))
    source.putpixel((0, 0), 255)
    source.putpixel((1, 0), 40)
    path = tmp_path / "mask.png"
    source.save(path)
    mask = load_mask(path, size=(2, 1))
    assert mask.mode == "L" and np.asarray(mask).ravel().tolist() == [255, 40]


def test_mask_from_rgb_uses_luminance(tmp_path: Path) -> None:
    path = tmp_path / "mask.jpg"
    Image.new("RGB", (4, 4), (255, 255, 255)).save(path)
    assert load_mask(path).getextrema() == (255, 255)


def test_mask_from_transparency(tmp_path: Path) -> None:
    source = Image.new("RGBA", (2, 1), (90, 90, 90, 255))
    source.putpixel((1, 0), (90, 90, 90, 0))
    path = tmp_path / "erased.png"
    source.save(path)
    assert np.asarray(load_mask(path)).ravel().tolist() == [0, 255]


def test_opaque_rgba_mask_uses_luminance(tmp_path: Path) -> None:
    path = tmp_path / "opaque.png"
    Image.new("RGBA", (2, 2), (255, 255, 255, 255)).save(path)
    assert load_mask(path).getextrema() == (255, 255)


def test_mask_size_mismatch_names_both_sizes(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    Image.new("L", (512, 384)).save(path)
    with pytest.raises(ImageError) as caught:
        load_mask(path, size=(640, 480))
    assert str(caught.value) == "mask.png is 512x384 but the image is 640x480."


def test_mask_from_alpha_needs_alpha() -> None:
    with pytest.raises(ImageError, match="no transparency"):
        mask_from_alpha(Image.new("RGB", (2, 2)))
    half = Image.new("LA", (1, 1), (0, 100))
    assert mask_from_alpha(half).getpixel((0, 0)) == 155
