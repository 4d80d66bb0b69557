"""Generation settings stored in images: ours, AUTOMATIC1111's "parameters", ComfyUI's "prompt".

Our own "studio" chunk and reading images live here; the A1111 text format is in
studio.formats.a1111 and the ComfyUI reader in studio.formats.comfyui (re-exported here).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from studio.errors import ImageError
from studio.formats.a1111 import _DEFAULTS, _float, _int, from_a1111, to_a1111
from studio.formats.comfyui import _cap, _comfyui, from_comfyui_prompt
from studio.formats.parameters import MODES, SAMPLERS, GenerationParams

__all__ = [
    "A1111_KEY",
    "COMFYUI_KEY",
    "MODES",
    "SAMPLERS",
    "STUDIO_KEY",
    "STUDIO_VERSION",
    "GenerationParams",
    "ImageMetadata",
    "StudioMetadata",
    "from_a1111",
    "from_comfyui_prompt",
    "parse_studio_chunk",
    "read_metadata",
    "studio_chunk",
    "to_a1111",
]

log = logging.getLogger(__name__)

STUDIO_KEY = "studio"
A1111_KEY = "parameters"
COMFYUI_KEY = "prompt"
STUDIO_VERSION = 1

# Text chunks after the pixel data are only found by decoding; skip that for huge images.
_MAX_PIXELS_FOR_TRAILING_TEXT = 64 * 1024 * 1024


@dataclass(frozen=True)
class StudioMetadata:
    """The contents of our own "studio" text chunk."""

    params: GenerationParams
    workflow: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    version: int = STUDIO_VERSION


@dataclass(frozen=True)
class ImageMetadata:
    """Generation settings found in an image, and which program wrote them."""

    params: GenerationParams
    source: str  # "studio" | "a1111" | "comfyui"
    workflow: dict[str, Any] | None
    raw: str
    versions: dict[str, str] = field(default_factory=dict)


# --- our own "studio" chunk -----------------------------------------------------------------

# Version n -> a function turning a version-n document into a version n+1 document.
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def studio_chunk(
    params: GenerationParams,
    workflow: dict[str, Any] | None = None,
    versions: dict[str, str] | None = None,
) -> str:
    """The JSON text of our "studio" chunk: parameters, the full workflow and program versions."""
    document = {
        "format": "studio",
        "version": STUDIO_VERSION,
        "params": params.to_dict(),
        "workflow": workflow,
        "versions": versions,
    }
    return json.dumps(document, ensure_ascii=False, default=str)


def parse_studio_chunk(text: str) -> StudioMetadata:
    """Read a "studio" chunk, migrating older versions and reading what is known of newer ones."""
    return _parse_studio(text, "the Studio settings")


def _parse_studio(text: str, where: str) -> StudioMetadata:
    try:
        document = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ImageError(f"{_cap(where)} are not valid JSON.") from exc
    if not isinstance(document, dict) or document.get("format") != "studio":
        raise ImageError(f"{_cap(where)} are not in Studio's format.")
    version = found = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ImageError(f"{_cap(where)} have no valid version number.")
    while version < STUDIO_VERSION:
        document, version = _MIGRATIONS[version](document), version + 1
    if version > STUDIO_VERSION:
        log.info(
            "%s were written by a newer Studio (version %d); reading what this one knows.",
            _cap(where),
            version,
        )
    data = document.get("params")
    if not isinstance(data, dict):
        raise ImageError(f"{_cap(where)} contain no generation parameters.")
    clean: dict[str, Any] = {}
    for item in fields(GenerationParams):
        if item.name in data:
            try:
                clean[item.name] = _coerce(data[item.name], getattr(_DEFAULTS, item.name))
            except (TypeError, ValueError) as exc:
                raise ImageError(f"{_cap(where)} have an invalid value for {item.name}.") from exc
    workflow = document.get("workflow")
    versions = document.get("versions")
    return StudioMetadata(
        params=GenerationParams(**clean),
        workflow=workflow if isinstance(workflow, dict) else None,
        versions={str(k): str(v) for k, v in versions.items()}
        if isinstance(versions, dict)
        else {},
        version=found,
    )


def _coerce(value: Any, default: Any) -> Any:
    """Check a JSON value against the type of the field's default."""
    if default is None:  # strength: a number or nothing
        return None if value is None else _coerce(value, 0.0)
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
        raise TypeError(value)
    if isinstance(default, int | float):
        if not isinstance(value, int | float | str):
            raise TypeError(value)
        return _int(str(value)) if isinstance(default, int) else _float(str(value))
    if not isinstance(value, type(default)):
        raise TypeError(value)
    return value


# --- reading from image files -------------------------------------------------------------------


def read_metadata(source: str | os.PathLike[str] | Image.Image) -> ImageMetadata | None:
    """Generation settings stored in an image (ours, then A1111, then ComfyUI); None if there are none."""
    if isinstance(source, Image.Image):
        name = Path(getattr(source, "filename", "") or "").name or "the image"
        return _from_texts(_texts(source), source.size, name)
    path = Path(source)
    if not path.exists():
        raise ImageError(f"The image {path.name} was not found in {path.parent}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                texts, size = _texts(image), image.size
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path.name} is not an image file Studio can read.") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{path} is a folder, not an image file.") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path.name} is too large to open safely.") from exc
    except OSError as exc:
        raise ImageError(f"{path.name} cannot be read: {exc.strerror or exc}.") from exc
    except ValueError as exc:  # PIL: "Decompressed Data Too Large" for a huge text chunk
        raise ImageError(
            f"{path.name} holds a text chunk larger than the "
            f"{PngImagePlugin.MAX_TEXT_CHUNK // 2**20} MB Studio reads; it was not opened."
        ) from exc
    return _from_texts(texts, size, path.name)


def _texts(image: Image.Image) -> dict[str, str]:
    texts = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
    wanted = {STUDIO_KEY, A1111_KEY, COMFYUI_KEY}
    if (
        isinstance(image, PngImagePlugin.PngImageFile)
        and not wanted & texts.keys()
        and image.width * image.height <= _MAX_PIXELS_FOR_TRAILING_TEXT
    ):
        try:
            texts.update({k: v for k, v in image.text.items() if isinstance(v, str)})
        except Exception as exc:  # a damaged file can still have readable settings before it
            log.debug("Could not read trailing PNG text chunks: %s", exc)
    if A1111_KEY not in texts:
        comment = _exif_user_comment(image)
        if comment is None and isinstance(image.info.get("comment"), bytes):
            comment = image.info["comment"].decode("utf-8", errors="replace")
        if comment and "Steps:" in comment:
            texts[A1111_KEY] = comment
    return texts


def _exif_user_comment(image: Image.Image) -> str | None:
    """The EXIF UserComment, where A1111 stores parameters in JPEG and WebP files."""
    try:
        data = image.getexif().get_ifd(0x8769).get(0x9286)
    except Exception:
        return None
    if isinstance(data, str):
        return data.strip("\0") or None
    if not isinstance(data, bytes) or not data:
        return None
    prefix, body = data[:8], data[8:]
    if prefix == b"UNICODE\0":
        # The byte order follows the EXIF block's; guess it from where the zero bytes are.
        little = len(body) >= 2 and body[0] != 0 and body[1] == 0
        text = body.decode("utf-16-le" if little else "utf-16-be", errors="replace")
    elif prefix in (b"ASCII\0\0\0", b"\0" * 8):
        text = body.decode("utf-8", errors="replace")
    else:
        text = data.decode("utf-8", errors="replace")
    return text.strip("\0") or None


def _from_texts(texts: dict[str, str], size: tuple[int, int], name: str) -> ImageMetadata | None:
    failures: list[ImageError] = []
    if STUDIO_KEY in texts:
        try:
            found = _parse_studio(texts[STUDIO_KEY], f"the Studio settings in {name}")
            return ImageMetadata(
                found.params, "studio", found.workflow, texts[STUDIO_KEY], found.versions
            )
        except ImageError as exc:
            log.info("%s", exc)  # raised below unless other metadata can stand in
            failures.append(exc)
    if A1111_KEY in texts:
        return ImageMetadata(from_a1111(texts[A1111_KEY]), "a1111", None, texts[A1111_KEY])
    if COMFYUI_KEY in texts:
        try:
            params, sized = _comfyui(texts[COMFYUI_KEY], f"the ComfyUI settings in {name}")
        except ImageError as exc:
            failures.append(exc)
        else:
            if not sized:  # img2img from a loaded picture: the output has the picture's size
                params = params.with_(width=size[0], height=size[1])
            return ImageMetadata(params, "comfyui", None, texts[COMFYUI_KEY])
    if failures:
        raise failures[0]
    return None
