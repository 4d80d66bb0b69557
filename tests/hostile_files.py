"""Crafted bad input for the reliability tests, built at test time (never committed as binaries).

Each builder writes one file and returns its path. The sizes are chosen so that a loader without
limits would need gigabytes, while building the file takes milliseconds.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import zlib
from pathlib import Path

from PIL import Image, PngImagePlugin

# -- PyTorch pickle files ----------------------------------------------------------------------


class _StorageRef:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _TensorRef:
    """Pickles like a torch tensor: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage: _StorageRef) -> None:
        self.storage = storage

    def __reduce__(self):
        import torch

        args = (self.storage, 0, (self.storage.numel,), (1,), False, collections.OrderedDict())
        return (torch._utils._rebuild_tensor_v2, args)


class _TorchPickler(pickle.Pickler):
    legacy = False  # the pre-1.6 format's storage ids end with a view field

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            import torch

            found = ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
            return (*found, None) if self.legacy else found
        return None


class _LegacyPickler(_TorchPickler):
    legacy = True


def _torch_pickle(numel: int) -> bytes:
    stream = io.BytesIO()
    _TorchPickler(stream, protocol=2).dump({"weight": _TensorRef(_StorageRef("0", numel))})
    return stream.getvalue()


def _zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip archive by hand: (name, payload, method, declared size, crc) per member.

    zipfile cannot write a member whose payload was compressed elsewhere, nor lie about sizes.
    """
    body, directory = io.BytesIO(), io.BytesIO()
    for name, payload, method, size, crc in members:
        offset = body.tell()
        encoded = name.encode()
        local = struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            20,
            0,
            method,
            0,
            0,
            crc,
            len(payload),
            size,
            len(encoded),
            0,
        )
        body.write(local + encoded + payload)
        central = struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            0,
            method,
            0,
            0,
            crc,
            len(payload),
            size,
            len(encoded),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        directory.write(central + encoded)
    start, central_bytes = body.tell(), directory.getvalue()
    count = len(members)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central_bytes), start, 0)
    return body.getvalue() + central_bytes + end


def deflate_bomb_pth(path: Path, gigabytes: float = 3.75) -> Path:
    """A few-megabyte .pth whose one tensor inflates to `gigabytes` of zeros (the tester's bomb)."""
    block = 64 * 2**20
    count = int(gigabytes * 2**30) // block
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    # After a full flush the compressor starts afresh, so identical input gives identical
    # output: one 64 MB block compressed once, repeated, then an empty final block.
    piece = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    payload = piece * count + compressor.flush(zlib.Z_FINISH)
    size = block * count
    pkl = _torch_pickle(size // 4)
    members = [
        ("bomb/data.pkl", pkl, 0, len(pkl), zlib.crc32(pkl)),
        ("bomb/byteorder", b"little", 0, 6, zlib.crc32(b"little")),
        ("bomb/data/0", payload, 8, size, 0),
        ("bomb/version", b"3\n", 0, 2, zlib.crc32(b"3\n")),
    ]
    path.write_bytes(_zip(members))
    return path


def lying_zip_pth(path: Path) -> Path:
    """A stored (uncompressed) member that declares far more bytes than the file holds."""
    pkl = _torch_pickle(2**28)
    data = bytes(64)
    members = [
        ("lie/data.pkl", pkl, 0, len(pkl), zlib.crc32(pkl)),
        ("lie/data/0", data, 0, 2**30, zlib.crc32(data)),
        ("lie/version", b"3\n", 0, 2, zlib.crc32(b"3\n")),
    ]
    path.write_bytes(_zip(members))
    return path


def legacy_huge_storage_pth(path: Path, numel: int = 2**31) -> Path:
    """The pre-1.6 format with one storage declaring `numel` floats and holding 16 bytes."""
    stream = io.BytesIO()
    for value in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(value, stream, protocol=2)
    _LegacyPickler(stream, protocol=2).dump({"weight": _TensorRef(_StorageRef("0", numel))})
    pickle.dump(["0"], stream, protocol=2)
    stream.write(struct.pack("<q", numel) + bytes(16))
    path.write_bytes(stream.getvalue())
    return path


def legacy_keyerror_pth(path: Path) -> Path:
    """A legacy file whose storage list names a storage the object pickle never made."""
    stream = io.BytesIO()
    for value in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(value, stream, protocol=2)
    _LegacyPickler(stream, protocol=2).dump({"weight": _TensorRef(_StorageRef("0", 4))})
    pickle.dump(["1"], stream, protocol=2)
    stream.write(struct.pack("<q", 4) + bytes(16))
    path.write_bytes(stream.getvalue())
    return path


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def code_pickle_pth(path: Path) -> Path:
    """A zip-format .pth whose pickle would run a command if fully unpickled."""
    import torch

    torch.save({"weight": torch.zeros(2), "payload": _RunsCode()}, path)
    return path


def truncated_pth(path: Path) -> Path:
    import torch

    torch.save({"weight": torch.zeros(256)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def random_bytes(path: Path, size: int = 4096) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def safetensors_huge_header(path: Path) -> Path:
    """A .safetensors whose header length field claims 2**40 bytes."""
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    return path


def safetensors_lying_offsets(path: Path) -> Path:
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [2**20, 2**10], "data_offsets": [0, 2**32]}}
    )
    raw = header.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(16))
    return path


# -- images --------------------------------------------------------------------------------------


def png_bytes(size=(16, 16), color=(10, 20, 30), texts: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (texts or {}).items():
        info.add_text(key, value)
    stream = io.BytesIO()
    Image.new("RGB", size, color).save(stream, "PNG", pnginfo=info)
    return stream.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_huge_text(path: Path, megabytes: int = 64, key: str = "parameters") -> Path:
    """A PNG whose zTXt chunk inflates past PIL's 1 MB text limit (to `megabytes`)."""
    data = png_bytes()
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    # One megabyte compressed once and repeated (see deflate_bomb_pth) behind a zlib header;
    # the checksum at the end is left out: nothing reads that far.
    piece = compressor.compress(b"a" * 2**20) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = b"\x78\xda" + piece * megabytes + compressor.flush(zlib.Z_FINISH)
    text = _chunk(b"zTXt", key.encode() + b"\0\0" + stream)
    path.write_bytes(data[:33] + text + data[33:])
    return path


def png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A valid PNG header claiming width x height, with one tiny IDAT: a decompression bomb."""
    data = png_bytes((1, 1))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(data[:8] + _chunk(b"IHDR", header) + data[33:])
    return path


def truncated_png(path: Path) -> Path:
    data = png_bytes((64, 64), (200, 10, 10))
    path.write_bytes(data[: len(data) // 2])
    return path


def png(path: Path, size=(64, 64), color=(90, 120, 200), mode="RGB", **texts: str) -> Path:
    if mode == "RGB":
        path.write_bytes(png_bytes(size, color, texts))
    else:
        Image.new(mode, size, 0 if mode == "L" else color).save(path)
    return path


# -- workflows ----------------------------------------------------------------------------------


def comfy_chain(length: int) -> dict:
    """A ComfyUI API prompt: checkpoint, prompt, latent, then `length` chained KSamplers."""
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["1", 1]}},
        "3": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
    }
    previous = ["3", 0]
    for index in range(length):
        cid = str(10 + index)
        prompt[cid] = {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["2", 0],
                "latent_image": previous,
                "seed": 1,
                "steps": 1,
                "cfg": 7,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        }
        previous = [cid, 0]
    prompt["8"] = {"class_type": "VAEDecode", "inputs": {"samples": previous, "vae": ["1", 2]}}
    prompt["9"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["8", 0], "filename_prefix": "x"},
    }
    return prompt


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth
