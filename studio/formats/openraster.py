"""OpenRaster (.ora): a layered picture Krita, GIMP and MyPaint open, and Studio saves.

A zip holding `mimetype` (first, stored), `stack.xml` (the layers, top first, with their
position, opacity and visibility), one PNG per layer, `mergedimage.png` and a thumbnail.
Written atomically and never over an existing file; reading checks sizes before decoding.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from PIL import Image

from studio.errors import ImageError
from studio.formats.files import atomic_write_bytes

MIMETYPE = b"image/openraster"
MAX_SIDE = 65536
MAX_LAYERS = 1000
THUMBNAIL = 256


@dataclass(frozen=True)
class OraLayer:
    name: str
    image: Image.Image  # RGB or RGBA
    x: int = 0
    y: int = 0
    visible: bool = True
    opacity: float = 1.0


def write_ora(
    path: Path, size: tuple[int, int], layers: list[OraLayer], merged: Image.Image
) -> Path:
    """Save `layers` (bottom first) of a `size` picture; returns the path written (`path`, or
    a free name beside it). `merged` is what the picture looks like, for previews."""
    width, height = size
    stack = ElementTree.Element("image", w=str(width), h=str(height), version="0.0.5")
    root = ElementTree.SubElement(stack, "stack")
    entries: list[tuple[str, Image.Image]] = []
    for number, layer in enumerate(layers):
        source = f"data/layer{number:03d}.png"
        ElementTree.SubElement(
            root,
            "layer",
            name=layer.name,
            src=source,
            x=str(layer.x),
            y=str(layer.y),
            opacity=f"{max(0.0, min(1.0, layer.opacity)):.3f}",
            visibility="visible" if layer.visible else "hidden",
        )
        entries.append((source, layer.image))
    # stack.xml lists the top layer first.
    root[:] = list(reversed(list(root)))
    thumbnail = merged.convert("RGB").copy()
    thumbnail.thumbnail((THUMBNAIL, THUMBNAIL))
    entries += [("mergedimage.png", merged.convert("RGB")), ("Thumbnails/thumbnail.png", thumbnail)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE, zipfile.ZIP_STORED)
        archive.writestr(
            "stack.xml",
            ElementTree.tostring(stack, encoding="utf-8", xml_declaration=True),
            zipfile.ZIP_DEFLATED,
        )
        for name, image in entries:
            png = io.BytesIO()
            image.save(png, "PNG", compress_level=3)
            archive.writestr(name, png.getvalue(), zipfile.ZIP_STORED)
    # Never over an existing file: a taken name gets a -0001 suffix, like every output.
    return atomic_write_bytes(path, buffer.getvalue())


def read_ora(path: Path) -> tuple[tuple[int, int], list[OraLayer]]:
    """The picture size and layers (bottom first) of an OpenRaster file."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.read("mimetype").strip() != MIMETYPE:
                raise ImageError(f"{path.name} is not an OpenRaster file.")
            stack = ElementTree.fromstring(archive.read("stack.xml"))
            width, height = int(stack.get("w", 0)), int(stack.get("h", 0))
            if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
                raise ImageError(f"{path.name} says its picture is {width}x{height} pixels.")
            found = stack.findall(".//layer")
            if len(found) > MAX_LAYERS:
                raise ImageError(f"{path.name} has more than {MAX_LAYERS} layers.")
            layers = []
            for element in reversed(found):  # stack.xml is top first
                with Image.open(io.BytesIO(archive.read(element.get("src", "")))) as image:
                    if image.width > MAX_SIDE or image.height > MAX_SIDE:
                        raise ImageError(f"A layer of {path.name} is too large.")
                    image.load()
                    pixels = image.convert("RGBA" if "A" in image.getbands() else "RGB")
                layers.append(
                    OraLayer(
                        name=element.get("name", "Layer"),
                        image=pixels,
                        x=int(float(element.get("x", 0))),
                        y=int(float(element.get("y", 0))),
                        visible=element.get("visibility", "visible") != "hidden",
                        opacity=float(element.get("opacity", 1.0)),
                    )
                )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, ElementTree.ParseError) as error:
        raise ImageError(f"{path.name} is not a readable OpenRaster file ({error}).") from None
    return (width, height), layers
