"""Writing output files: never overwrite, always atomic (temporary file, fsync, then link)."""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from PIL import Image, PngImagePlugin

from studio.errors import StudioError
from studio.formats.images import to_rgb
from studio.formats.metadata import A1111_KEY, STUDIO_KEY, studio_chunk, to_a1111
from studio.formats.parameters import GenerationParams

log = logging.getLogger(__name__)

_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16", "I;16B")
_MAX_ATTEMPTS = 10_000


def unique_path(path: str | os.PathLike[str]) -> Path:
    """The path itself if nothing is there, else the first free "name-0001.png", "name-0002.png"..."""
    path = Path(path)
    candidate, number = path, 0
    while os.path.lexists(candidate):
        number += 1
        candidate = path.with_name(f"{path.stem}-{number:04d}{path.suffix}")
    return candidate


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False
) -> Path:
    """Write bytes atomically; without overwrite, an existing file is kept and a new name used."""
    return _atomic_write(Path(path), lambda stream: stream.write(data), overwrite)


def save_png(
    image: Image.Image,
    path: str | os.PathLike[str],
    params: GenerationParams | None = None,
    workflow: dict[str, Any] | None = None,
    versions: dict[str, str] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Save a PNG atomically with A1111 "parameters" and "studio" text chunks; return its path."""
    info = PngImagePlugin.PngInfo()
    if params is not None:
        _add_text(info, A1111_KEY, to_a1111(params), compress=False)
        _add_text(info, STUDIO_KEY, studio_chunk(params, workflow, versions), compress=True)
    if image.mode not in _PNG_MODES:
        image = to_rgb(image)
    return _atomic_write(
        Path(path), lambda stream: image.save(stream, format="PNG", pnginfo=info), overwrite
    )


# The formats an output may have, by extension; each carries the parameters its own way.
OUTPUT_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
# Ours only: ".NAME.XXXXXXXX.tmp" for the images and JSON files Studio writes.
_TEMPORARY = re.compile(r"^\..+\.(png|jpe?g|webp|json)\.[0-9a-f]{8}\.tmp$", re.IGNORECASE)
# A temporary file this old belongs to no save still running (a save takes seconds).
STALE_TEMPORARY_SECONDS = 300


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, an output name whose format Studio cannot write."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        shown = path.suffix or "no extension"
        raise StudioError(
            f"{path.name} has {shown}: Studio writes .png, .jpg or .webp files; "
            "choose one of those."
        )
    return path


def save_image(
    image: Image.Image,
    path: str | os.PathLike[str],
    params: GenerationParams | None = None,
    workflow: dict[str, Any] | None = None,
    versions: dict[str, str] | None = None,
) -> Path:
    """Save in the format the extension names (PNG, JPEG, WebP), atomically, never overwriting.

    PNG keeps the parameters and the whole workflow in text chunks; JPEG and WebP keep the
    parameters in EXIF UserComment, where AUTOMATIC1111 puts them.
    """
    path = check_output_path(path)
    kind = OUTPUT_SUFFIXES[path.suffix.lower()]
    if kind == "PNG":
        return save_png(image, path, params, workflow, versions)
    options: dict[str, Any] = {"quality": 95}
    if params is not None:
        exif = Image.Exif()
        text = to_a1111(params)
        exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = b"UNICODE\0" + text.encode("utf-16-be")
        options["exif"] = exif.tobytes()
    rgb = to_rgb(image)
    return _atomic_write(
        path, lambda stream: rgb.save(stream, format=kind, **options), overwrite=False
    )


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> int:
    """Remove our hidden ".NAME.XXXXXXXX.tmp" files left in `folder` by a killed save."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not _TEMPORARY.match(entry.name):
            continue
        try:
            stale = entry.is_file(follow_symlinks=False) and (
                now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMPORARY_SECONDS
            )
            if stale:
                os.unlink(entry.path)
                removed += 1
        except OSError as exc:
            log.debug("Could not remove %s: %s", entry.path, exc)
    if removed:
        log.info("Removed %d temporary file(s) left by interrupted saves in %s", removed, folder)
    return removed


def _add_text(info: PngImagePlugin.PngInfo, key: str, text: str, *, compress: bool) -> None:
    # PIL refuses to open a file whose compressed text chunk inflates past MAX_TEXT_CHUNK.
    compress = compress and len(text.encode("utf-8")) < PngImagePlugin.MAX_TEXT_CHUNK
    if text.isascii():
        info.add_text(key, text, zip=compress)
    else:
        info.add_itxt(key, text, zip=compress)


def _atomic_write(path: Path, write: Callable[[IO[bytes]], Any], overwrite: bool) -> Path:
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudioError(f"The folder {folder} cannot be created: {_reason(exc)}.") from exc
    temporary = _write_temporary(folder, path.name, write)
    try:
        target = _move_into_place(temporary, path, overwrite)
    except BaseException as exc:
        _remove(temporary)
        if isinstance(exc, OSError):
            raise StudioError(
                f"{path.name} could not be saved in {folder}: {_reason(exc)}."
            ) from exc
        raise
    _sync_folder(folder)
    log.debug("Wrote %s", target)
    return target


def _write_temporary(folder: Path, name: str, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write to a new hidden file beside the target; on any failure, nothing is left behind."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            # Created like any new file (mode 0o666 less the umask), unlike mkstemp's 0o600.
            descriptor = os.open(temporary, flags, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise StudioError(f"The folder {folder} cannot be written to: {_reason(exc)}.") from exc
        except ValueError as exc:  # a NUL in the name
            raise StudioError(f"{name!r} is not a valid file name.") from exc
    else:
        raise StudioError(f"The folder {folder} cannot be written to: no free temporary name.")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException as exc:
        _remove(temporary)
        if isinstance(exc, OSError):
            raise StudioError(f"{name} could not be written in {folder}: {_reason(exc)}.") from exc
        raise
    return temporary


def _move_into_place(temporary: Path, path: Path, overwrite: bool) -> Path:
    if overwrite:
        os.replace(temporary, path)
        return path
    use_links = True
    for _ in range(_MAX_ATTEMPTS):
        target = unique_path(path)
        if use_links:
            try:
                # A hard link fails if the name exists, so a file that appeared meanwhile is kept.
                os.link(temporary, target)
            except FileExistsError:
                continue  # another writer won the race for this name; take the next one
            except OSError as exc:
                log.debug("Hard links unavailable in %s (%s); renaming instead.", path.parent, exc)
                use_links = False
            else:
                _remove(temporary)
                return target
        if not os.path.lexists(target):
            os.replace(temporary, target)
            return target
    raise StudioError(f"No free file name was found for {path.name} in {path.parent}.")


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("Could not remove the temporary file %s: %s", path, exc)


def _sync_folder(folder: Path) -> None:
    """Make the new directory entry durable too (POSIX only; best effort)."""
    if os.name != "posix":
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).rstrip(".").lower()
