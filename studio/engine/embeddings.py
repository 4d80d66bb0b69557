"""Textual-inversion embeddings (A1111 .pt/.safetensors, diffusers, SDXL two-encoder files).

An embedding is used by writing its file name (without extension) in the prompt. Its vectors
go into the prompt encoding in place of those words (studio.engine.prompts); the model's
vocabulary is never changed. A `.pt` file is a pickle, which can run code when loaded the
ordinary way: it is only ever read by torch's weights-only unpickler, which refuses anything
but tensors and plain containers.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from studio.errors import ModelError

EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")
_cache: dict[tuple, Embedding] = {}
_cache_lock = threading.Lock()


def read_tensors(path: Path, what: str) -> dict[str, object]:
    """A file's top-level entries: safetensors, or a pickle read weights-only."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu"))
        from studio.formats.weights import check_pickle_weights

        check_pickle_weights(path)  # declared sizes first: torch allocates whatever they say
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as exc:
        text = str(exc)
        if (
            "weights_only" in text
            or "Unsupported global" in text
            or isinstance(exc, pickle.UnpicklingError)
        ):
            raise ModelError(
                f"{path.name} was refused: it is a pickle that asks to run code or build "
                "objects other than tensors (only plain weights are loaded from .pt files)."
            ) from None
        raise ModelError(f"{path.name} could not be read as a {what} file.") from None
    except OSError as exc:
        raise ModelError(f"{path.name} could not be read ({exc.strerror or exc}).") from None
    except ModelError:
        raise
    except Exception as exc:  # safetensors raises its own kinds on a damaged header
        raise ModelError(
            f"{path.name} is not a valid {what} file ({type(exc).__name__})."
        ) from None
    if not isinstance(data, dict):
        raise ModelError(f"{path.name} is not a {what} file (no named weights in it).")
    return data


@dataclass(frozen=True, eq=False)
class Embedding:
    """A named list of token vectors: by encoder width for SDXL ones (768 and 1280)."""

    name: str
    vectors: Mapping[str, torch.Tensor]  # "clip_l" / "clip_g", or "any" for one-encoder files

    @property
    def count(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    def for_model(self, widths: Iterable[int], model_label: str) -> dict[int, torch.Tensor]:
        """Vectors by encoder width for a model whose text encoders have these widths."""
        widths = list(widths)
        by_width = {v.shape[-1]: v for v in self.vectors.values()}
        missing = [w for w in widths if w not in by_width]
        if missing:
            have = ", ".join(str(w) for w in sorted(by_width))
            raise ModelError(
                f'The embedding "{self.name}" is for a different model family ({have}-wide '
                f"vectors; {model_label} needs {', '.join(map(str, widths))})."
            )
        return {w: by_width[w] for w in widths}


def _as_matrix(value: object, path: Path) -> torch.Tensor:
    if (
        not isinstance(value, torch.Tensor)
        or value.ndim not in (1, 2)
        or not value.is_floating_point()
    ):
        raise ModelError(f"{path.name} is not a textual-inversion embedding.")
    matrix = value.detach().float()
    matrix = matrix.unsqueeze(0) if matrix.ndim == 1 else matrix
    if not 1 <= matrix.shape[0] <= 75:
        raise ModelError(f"{path.name} has {matrix.shape[0]} vectors; an embedding has 1 to 75.")
    if not torch.isfinite(matrix).all():
        raise ModelError(f"{path.name} holds non-finite numbers.")
    return matrix


def load_embedding(path: str | Path) -> Embedding:
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    data = read_tensors(path, "embedding")
    name = path.stem
    if "clip_l" in data or "clip_g" in data:
        vectors = {k: _as_matrix(data[k], path) for k in ("clip_l", "clip_g") if k in data}
    elif "string_to_param" in data and isinstance(data["string_to_param"], dict):
        params = list(data["string_to_param"].values())
        if not params:
            raise ModelError(f"{path.name} is an empty embedding.")
        vectors = {"any": _as_matrix(params[0], path)}
    elif "emb_params" in data:
        vectors = {"any": _as_matrix(data["emb_params"], path)}
    else:
        tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
        if len(tensors) != 1:
            raise ModelError(f"{path.name} is not a textual-inversion embedding.")
        vectors = {"any": _as_matrix(tensors[0], path)}
    counts = {v.shape[0] for v in vectors.values()}
    if len(counts) != 1:
        raise ModelError(f"{path.name} has different vector counts for its two encoders.")
    embedding = Embedding(name, vectors)
    with _cache_lock:
        if len(_cache) > 256:
            _cache.clear()
        _cache[key] = embedding
    return embedding


def find_embedding_files(folders: Iterable[Path]) -> dict[str, Path]:
    """Embedding files in these folders (and below), by the name a prompt uses."""
    found: dict[str, Path] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in EMBEDDING_SUFFIXES and path.is_file():
                found.setdefault(path.stem, path)
    return found
