"""Model folders as people have them: an A1111/Forge or ComfyUI install, or a plain folder.

A configured folder is searched together with the usual subfolders of each kind of file, so
pointing Studio at `stable-diffusion-webui/` or `ComfyUI/` finds checkpoints, LoRAs,
embeddings, VAEs and upscalers where those programs keep them. ComfyUI's
`extra_model_paths.yaml` in a configured folder (or given itself) adds the folders it lists.
No torch here: the window uses this to list files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

KINDS = ("checkpoint", "lora", "embedding", "vae", "upscaler")

# Relative folders where each kind lives, A1111/Forge first, then ComfyUI, then plain names.
SUBFOLDERS: dict[str, tuple[str, ...]] = {
    "checkpoint": ("models/Stable-diffusion", "models/checkpoints", "checkpoints"),
    "lora": ("models/Lora", "models/LyCORIS", "models/loras", "loras", "Lora", "LyCORIS"),
    "embedding": ("embeddings", "models/embeddings"),
    "vae": ("models/VAE", "models/vae", "vae", "VAE"),
    "upscaler": (
        "models/ESRGAN",
        "models/RealESRGAN",
        "models/SwinIR",
        "models/upscale_models",
        "upscale_models",
        "ESRGAN",
    ),
}
# extra_model_paths.yaml keys for each kind (ComfyUI's names; A1111 sections use the same).
_YAML_KEYS: dict[str, tuple[str, ...]] = {
    "checkpoint": ("checkpoints",),
    "lora": ("loras",),
    "embedding": ("embeddings",),
    "vae": ("vae",),
    "upscaler": ("upscale_models",),
}
EXTRA_PATHS_FILE = "extra_model_paths.yaml"


def _yaml_folders(path: Path) -> dict[str, list[Path]]:
    """The folders an extra_model_paths.yaml lists, by kind; a bad file is logged and skipped."""
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception as exc:  # a broken file must not stop Studio finding the other models
        log.warning("Skipping %s: %s", path, str(exc).splitlines()[0] if str(exc) else exc)
        return {}
    found: dict[str, list[Path]] = {kind: [] for kind in KINDS}
    if not isinstance(data, dict):
        return found
    for section in data.values():
        if not isinstance(section, dict):
            continue
        base = section.get("base_path")
        base_path = Path(str(base)).expanduser() if base else path.parent
        if not base_path.is_absolute():
            base_path = path.parent / base_path
        for kind, keys in _YAML_KEYS.items():
            for key in keys:
                value = section.get(key)
                if not isinstance(value, str):
                    continue
                for line in value.splitlines():
                    if line.strip():
                        folder = Path(line.strip()).expanduser()
                        found[kind].append(folder if folder.is_absolute() else base_path / folder)
    return found


def folders_for(kind: str, roots: Iterable[str | Path]) -> list[Path]:
    """The existing folders where files of `kind` may be, for the configured roots.

    A plain folder (none of the usual subfolders in it) counts for every kind but embeddings
    (a prompt word must never pick up a checkpoint that shares its name); an install's own
    root does not, so its program files are never searched.
    """
    result: list[Path] = []
    seen: set[Path] = set()

    def add(folder: Path) -> None:
        try:
            key = folder.resolve()
        except OSError:
            return
        if key not in seen and folder.is_dir():
            seen.add(key)
            result.append(folder)

    for root in roots:
        root = Path(root).expanduser()
        if root.is_file() and root.name.endswith((".yaml", ".yml")):
            for folder in _yaml_folders(root).get(kind, []):
                add(folder)
            continue
        for sub in SUBFOLDERS[kind]:
            add(root / sub)
        if (root / EXTRA_PATHS_FILE).is_file():
            for folder in _yaml_folders(root / EXTRA_PATHS_FILE).get(kind, []):
                add(folder)
        if kind != "embedding" and is_plain(root):
            add(root)
    return result


def is_plain(root: Path) -> bool:
    """True for a folder that is not an A1111/ComfyUI install (none of their subfolders)."""
    if (root / EXTRA_PATHS_FILE).is_file():
        return False
    return not any((root / sub).is_dir() for subs in SUBFOLDERS.values() for sub in subs)


def all_folders(roots: Iterable[str | Path]) -> list[Path]:
    """Every folder of every kind for these roots, without repeats."""
    roots = list(roots)
    seen: set[Path] = set()
    result = []
    for kind in KINDS:
        for folder in folders_for(kind, roots):
            if folder.resolve() not in seen:
                seen.add(folder.resolve())
                result.append(folder)
    return result


def find_file(
    name: str, kind: str, roots: Iterable[str | Path], suffixes: Iterable[str]
) -> Path | None:
    """A file of `kind` by its name (with or without extension, or a relative path)."""
    suffixes = tuple(s.lower() for s in suffixes)
    wanted = Path(name)
    for folder in folders_for(kind, roots):
        direct = folder / wanted
        if direct.is_file():
            return direct
        for suffix in suffixes:
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    # Anywhere below the kind's folders (A1111 users sort LoRAs into subfolders).
    for folder in folders_for(kind, roots):
        if folder.resolve() in {Path(r).expanduser().resolve() for r in roots}:
            continue  # the root itself was searched directly; its whole tree may be huge
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix.lower() in suffixes:
                if path.name == wanted.name or path.stem == wanted.name:
                    return path
    return None


def list_files(kind: str, roots: Iterable[str | Path], suffixes: Iterable[str]) -> list[Path]:
    """Files of `kind` in its folders and below, sorted by name (for pickers and completion)."""
    suffixes = tuple(s.lower() for s in suffixes)
    roots = list(roots)
    root_keys = {Path(r).expanduser().resolve() for r in roots}
    found: dict[Path, Path] = {}
    for folder in folders_for(kind, roots):
        walk = folder.iterdir() if folder.resolve() in root_keys else folder.rglob("*")
        for path in walk:
            if path.suffix.lower() in suffixes and path.is_file():
                found.setdefault(path.resolve(), path)
    return sorted(found.values(), key=lambda p: p.name.lower())
