"""What each file in the user's model folders is: kind (checkpoint, LoRA, embedding, VAE,
upscaler) and family (SD 1.x, SD 2.x, SDXL; Flux, SD3 and others named as such), read from the
safetensors header alone, and remembered by size and modification time.

A safetensors file starts with an 8-byte length and a JSON header of every tensor's name,
dtype and shape: a few hundred KB for a 7 GB checkpoint, so a folder of a thousand files is
classified without reading weights. The results are kept in the user's cache folder; a file
whose size and mtime did not change is not opened again.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from studio.engine.detect import CHECKPOINT_SUFFIXES
from studio.errors import StudioError

log = logging.getLogger(__name__)

CACHE_VERSION = 1
MAX_HEADER_BYTES = 100 * 1024 * 1024
FAMILY_BY_CONTEXT = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}
FAMILY_BY_TEXT_WIDTH = {768: "SD 1.x", 1024: "SD 2.x"}
_lock = threading.Lock()


@dataclass(frozen=True)
class ModelEntry:
    path: Path
    # "checkpoint", "lora", "embedding", "vae", "upscaler", "unsupported" (a family Studio
    # cannot run yet) or "unusable" (not a model, or damaged)
    kind: str
    label: str  # the detected family, or why it cannot be used


def read_header(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a .safetensors header, without reading any weights."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            raise ValueError("too short for a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if not 2 <= length <= MAX_HEADER_BYTES or length > os.fstat(handle.fileno()).st_size:
            raise ValueError("its header length is impossible")
        header = json.loads(handle.read(length))
    if not isinstance(header, dict):
        raise ValueError("its header is not a table of tensors")
    shapes = {}
    for name, entry in header.items():
        if name != "__metadata__" and isinstance(entry, dict):
            shape = entry.get("shape")
            if isinstance(shape, list) and all(isinstance(n, int) for n in shape):
                shapes[name] = tuple(shape)
    return shapes


def _lora_family(shapes: dict[str, tuple[int, ...]]) -> str:
    keys = list(shapes)
    if any("double_blocks" in k or "single_transformer_blocks" in k for k in keys):
        return "Flux"
    if any("joint_blocks" in k or "context_block" in k for k in keys):
        return "SD3"
    if any(k.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.")) for k in keys):
        return "SDXL"
    # The cross-attention key projection's input width is the text context width.
    for key, shape in shapes.items():
        if ("attn2_to_k" in key or "attn2.to_k" in key) and ("down" in key or "lora_A" in key):
            if len(shape) >= 2 and shape[1] in FAMILY_BY_CONTEXT:
                return FAMILY_BY_CONTEXT[shape[1]]
    for key, shape in shapes.items():
        if ("q_proj" in key) and ("lora_down" in key or "lora_A" in key) and len(shape) >= 2:
            if shape[1] in FAMILY_BY_TEXT_WIDTH:
                return FAMILY_BY_TEXT_WIDTH[shape[1]]
    return "an unknown family"


def _embedding_family(shapes: dict[str, tuple[int, ...]]) -> str:
    if "clip_g" in shapes:
        return "SDXL"
    width = next(iter(shapes.values()))[-1]
    return FAMILY_BY_TEXT_WIDTH.get(width, f"{width}-wide text encoders")


def classify_shapes(path: Path, shapes: dict[str, tuple[int, ...]]) -> ModelEntry:
    """Kind and family from tensor names and shapes.

    A Stable Diffusion checkpoint comes back with no label (detect() reads its family), and a
    file that matches nothing known with kind "upscaler?" (spandrel decides).
    """
    keys = list(shapes)

    def has(*parts: str) -> bool:
        return any(part in key for key in keys for part in parts)

    def starts(*prefixes: str) -> bool:
        return any(key.startswith(prefixes) for key in keys)

    if not keys:
        return ModelEntry(path, "unusable", "holds no weights")
    if has("hada_w1", "lokr_w1", "lokr_w2"):
        return ModelEntry(path, "lora", f"LyCORIS LoHa/LoKr for {_lora_family(shapes)} (not yet)")
    if has(".lora_down.", ".lora_A.", ".lora.down.", "lora_up.weight") or starts("lora_unet_"):
        family = _lora_family(shapes)
        if family in ("Flux", "SD3"):
            return ModelEntry(
                path, "unsupported", f"LoRA for {family} (Studio cannot run {family} yet)"
            )
        return ModelEntry(path, "lora", f"LoRA for {family}")
    if keys and (set(keys) <= {"clip_l", "clip_g"} or set(keys) == {"emb_params"}):
        return ModelEntry(path, "embedding", f"embedding for {_embedding_family(shapes)}")
    if starts("double_blocks.", "model.diffusion_model.double_blocks.") or has(
        "single_transformer_blocks."
    ):
        return ModelEntry(path, "unsupported", "Flux checkpoint (Studio cannot run Flux yet)")
    if starts("joint_blocks.", "model.diffusion_model.joint_blocks."):
        return ModelEntry(path, "unsupported", "SD3 checkpoint (Studio cannot run SD3 yet)")
    if starts("model.diffusion_model."):
        return ModelEntry(path, "checkpoint", "")  # detect() tells the family
    vae_keys = {"encoder.conv_in.weight", "decoder.conv_out.weight"}
    prefixed = {"first_stage_model." + k for k in vae_keys}
    if vae_keys <= set(keys) or prefixed <= set(keys):
        conv = shapes.get("decoder.conv_in.weight") or shapes.get(
            "first_stage_model.decoder.conv_in.weight"
        )
        channels = conv[1] if conv and len(conv) == 4 else 4
        if channels == 16:
            return ModelEntry(path, "unsupported", "VAE for Flux/SD3 (16 latent channels)")
        return ModelEntry(path, "vae", "VAE for SD 1.x/2.x/SDXL")
    if len(keys) == 1 and len(next(iter(shapes.values()))) in (1, 2):
        return ModelEntry(path, "embedding", f"embedding for {_embedding_family(shapes)}")
    return ModelEntry(path, "upscaler?", "")


def describe(path: Path) -> ModelEntry:
    """Classify one file or folder without loading weights (upscalers: through spandrel)."""
    from studio.engine.detect import detect

    try:
        if path.is_dir():
            return ModelEntry(path, "checkpoint", detect(path).label)
        if path.suffix.lower() == ".safetensors":
            try:
                shapes = read_header(path)
            except (OSError, ValueError) as exc:
                return ModelEntry(path, "unusable", f"not a readable .safetensors file ({exc})")
            entry = classify_shapes(path, shapes)
            if entry.kind == "checkpoint":
                return ModelEntry(path, "checkpoint", detect(path).label)
            if entry.kind != "upscaler?":
                return entry
        elif "embeddings" in (p.lower() for p in path.parts) and path.stat().st_size < 1 << 20:
            from studio.engine.embeddings import load_embedding

            embedding = load_embedding(path)
            widths = {v.shape[-1] for v in embedding.vectors.values()}
            family = "SDXL" if len(widths) == 2 else FAMILY_BY_TEXT_WIDTH.get(widths.pop(), "?")
            return ModelEntry(path, "embedding", f"embedding for {family}")
        else:
            from studio.engine.detect import read_state_dict_shapes

            shapes, _ = read_state_dict_shapes(path)  # pickles: weights-only
            entry = classify_shapes(path, shapes)
            if entry.kind == "checkpoint":
                return ModelEntry(path, "checkpoint", detect(path).label)
            if entry.kind != "upscaler?":
                return entry
        from studio.engine.upscale import load_upscale_model

        model = load_upscale_model(path, device="cpu")
        return ModelEntry(path, "upscaler", f"{model.architecture} x{model.scale}")
    except StudioError as exc:
        return ModelEntry(path, "unusable", str(exc))


def _cache_file() -> Path:
    from platformdirs import user_cache_dir

    if os.environ.get("STUDIO_CACHE_DIR"):
        return Path(os.environ["STUDIO_CACHE_DIR"]) / "model-scan.json"
    if os.environ.get("STUDIO_CONFIG_DIR"):  # tests and the self-test keep everything there
        return Path(os.environ["STUDIO_CONFIG_DIR"]) / "cache" / "model-scan.json"
    return Path(user_cache_dir("studio", appauthor=False)) / "model-scan.json"


def _load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _save_cache(path: Path, files: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"version": CACHE_VERSION, "files": files}), "utf-8")
        os.replace(temporary, path)
    except OSError as exc:  # a cache that cannot be written only costs time
        log.info("Could not save the model scan cache: %s", exc)


def _candidates(folder: Path, seen: set[Path]) -> Iterable[Path]:
    if (folder / "model_index.json").exists():
        yield folder
        return
    try:
        items = sorted(folder.iterdir())
    except OSError:
        return
    for item in items:
        if item.name.startswith("."):
            continue
        if item.is_dir():
            if (item / "model_index.json").exists():
                yield item
            else:
                yield from _candidates(item, seen)
        elif item.suffix.lower() in CHECKPOINT_SUFFIXES:
            key = item.resolve()
            if key not in seen:
                seen.add(key)
                yield item


def scan_folders(roots: list[Path], cache_file: Path | None = None) -> list[ModelEntry]:
    """Every model file under the roots (as A1111/ComfyUI installs or plain folders)."""
    from studio.engine.folders import all_folders

    cache_file = cache_file or _cache_file()
    with _lock:
        cached = _load_cache(cache_file)
    entries: list[ModelEntry] = []
    changed = False
    seen: set[Path] = set()
    for root in roots:
        root = Path(root).expanduser()
        if not root.exists():
            entries.append(ModelEntry(root, "unusable", f"Folder not found: {root}."))
    for folder in all_folders([Path(r).expanduser() for r in roots]):
        for path in _candidates(folder, seen):
            try:
                stat = path.stat()
            except OSError:
                continue
            key = str(path.resolve())
            stamp = [stat.st_size, stat.st_mtime_ns]
            hit = cached.get(key)
            if isinstance(hit, list) and len(hit) == 4 and hit[:2] == stamp:
                entries.append(ModelEntry(path, str(hit[2]), str(hit[3])))
                continue
            entry = describe(path)
            entries.append(entry)
            cached[key] = [*stamp, entry.kind, entry.label]
            changed = True
    if changed:
        with _lock:
            _save_cache(cache_file, cached)
    return entries


_hashes: dict[tuple, str] = {}


def lora_hash(path: Path) -> str:
    """A1111's short LoRA hash: sha256 of a .safetensors file's data after the header (12 hex
    digits), or of the whole file for other formats; remembered by size and mtime."""
    import hashlib

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _hashes:
        return _hashes[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if path.suffix.lower() == ".safetensors":
            (length,) = struct.unpack("<Q", handle.read(8))
            handle.seek(8 + length)
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    _hashes[key] = digest.hexdigest()[:12]
    return _hashes[key]
