"""Checking a PyTorch pickle weights file before torch reads it, with the standard library only.

torch.load(weights_only=True) runs no code, but it trusts the sizes a file declares: a zip
member compressed with deflate is inflated into memory at whatever size it claims, and a
legacy (pre-zip) file allocates each storage at its declared element count before reading
it. A few megabytes can so demand many gigabytes. Here the file's structure is walked
without allocating anything it declares: a weights file cannot need more memory than its
own size.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

from studio.errors import ModelError

# torch.save writes data.pkl of a few hundred kilobytes even for large checkpoints.
MAX_PICKLE_BYTES = 64 * 1024 * 1024
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_ELEMENT_SIZES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexFloatStorage": 8,
    "ComplexDoubleStorage": 16,
    "UntypedStorage": 1,
}


def check_pickle_weights(path: str | os.PathLike[str]) -> int:
    """Refuse a .ckpt/.pt/.pth whose declared contents exceed the file; return its data bytes."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if zipfile.is_zipfile(path):
            return _check_zip(path, size)
        with open(path, "rb") as stream:
            return _check_legacy(path, stream, size)
    except ModelError:
        raise
    except (OSError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path.name} is not a readable PyTorch weights file (corrupt).") from exc
    except RecursionError as exc:
        raise ModelError(f"{path.name} is nested too deeply to be a weights file.") from exc


def _check_zip(path: Path, size: int) -> int:
    total = 0
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        for member in members:
            if member.compress_type != zipfile.ZIP_STORED:
                # torch.save never compresses; a compressed member can inflate to any size.
                raise ModelError(
                    f"{path.name} holds compressed data, which PyTorch never writes: refused "
                    "(it could expand far beyond the file's size); use a .safetensors version."
                )
            if member.file_size != member.compress_size:
                raise ModelError(f"{path.name} is damaged: a member's sizes disagree.")
            total += member.file_size
        if total > size:
            raise ModelError(f"{path.name} declares more data than the file holds: it is damaged.")
        pickles = [m for m in members if m.filename.endswith("data.pkl")]
        if len(pickles) != 1:
            raise ModelError(f"{path.name} is a zip file but not a PyTorch weights file.")
        if pickles[0].file_size > MAX_PICKLE_BYTES:
            raise ModelError(f"{path.name} has an implausibly large index; refused.")
        storages = _declared_storages(io.BytesIO(archive.read(pickles[0])), path)
        prefix = pickles[0].filename[: -len("data.pkl")]
        names = {m.filename: m.file_size for m in members}
        for key, (element, numel) in storages.items():
            nbytes = element * numel
            stored = names.get(f"{prefix}data/{key}")
            if stored is None:
                raise ModelError(f"{path.name} is incomplete: tensor data '{key}' is missing.")
            if nbytes > stored:
                raise ModelError(
                    f"{path.name} declares a tensor larger than the data it holds: it is damaged."
                )
    return total


def _check_legacy(path: Path, stream, size: int) -> int:
    """The pre-1.6 format: magic, protocol, system info, the object pickle, the storage keys,
    then for each storage an 8-byte element count and its bytes."""
    try:
        magic = _StrictUnpickler(stream).load()
    except Exception as exc:
        raise ModelError(f"{path.name} is not a PyTorch weights file.") from exc
    if magic != _LEGACY_MAGIC:
        raise ModelError(f"{path.name} is not a PyTorch weights file (or an unsupported old one).")
    _StrictUnpickler(stream).load()  # protocol version
    _StrictUnpickler(stream).load()  # system info
    storages = _declared_storages(stream, path)
    keys = _StrictUnpickler(stream).load()
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ModelError(f"{path.name} is damaged (its storage list is unreadable).")
    declared = sum(element * numel for element, numel in storages.values())
    if declared > size:
        raise ModelError(
            f"{path.name} declares {declared / 2**20:.0f} MB of tensors in a "
            f"{size / 2**20:.1f} MB file: refused as damaged or crafted."
        )
    # torch reads each storage's own element count from the file and allocates it.
    for key in keys:
        header = stream.read(8)
        if len(header) != 8:
            raise ModelError(f"{path.name} is truncated.")
        (count,) = struct.unpack("<q", header)
        nbytes = count * storages.get(key, (1, 0))[0]
        remaining = size - stream.tell()
        if count < 0 or nbytes > remaining:
            raise ModelError(
                f"{path.name} declares tensor data beyond the end of the file: it is damaged."
            )
        stream.seek(nbytes, os.SEEK_CUR)
    return declared


class _Stub:
    """Stands for any object the pickle builds; accepts everything, allocates nothing."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __call__(self, *args, **kwargs) -> _Stub:
        return _Stub()

    def __setstate__(self, state) -> None:
        pass

    def __setitem__(self, key, value) -> None:
        pass

    def append(self, value) -> None:
        pass

    def extend(self, values) -> None:
        pass


class _StrictUnpickler(pickle.Unpickler):
    """Reads plain values only; any class reference is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


class _IndexUnpickler(pickle.Unpickler):
    """Walks the object pickle, recording each storage's declared size instead of building it."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.storages: dict[str, tuple[int, int]] = {}  # key -> (element size, count)

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _ELEMENT_SIZES:
            return name  # the storage type, as its name
        return _Stub

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise pickle.UnpicklingError("unexpected persistent id")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        # Newer files name a dtype-less storage type; their sizes count bytes.
        element = _ELEMENT_SIZES.get(storage_type, 1) if isinstance(storage_type, str) else 1
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise pickle.UnpicklingError("bad storage size")
        known = self.storages.get(key, (element, 0))
        self.storages[key] = (element, max(known[1], numel))
        return _Stub()


def _declared_storages(stream, path: Path) -> dict[str, tuple[int, int]]:
    unpickler = _IndexUnpickler(stream)
    try:
        unpickler.load()
    except RecursionError:
        raise
    except Exception as exc:
        raise ModelError(f"{path.name} is not a readable PyTorch weights file (corrupt).") from exc
    return unpickler.storages
