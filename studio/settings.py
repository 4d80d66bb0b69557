"""User settings: a small typed record saved as JSON in the platform config folder."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import platformdirs

log = logging.getLogger(__name__)

APP_NAME = "Studio"
# The choices of the memory_mode setting: studio.engine.memory_modes.CHOICES (named here too,
# since this module imports no torch).
MEMORY_MODES = ("auto", "none", "attention slicing", "model offload", "sequential offload")


def config_dir() -> Path:
    override = os.environ.get("STUDIO_CONFIG_DIR")
    return (
        Path(override)
        if override
        else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    )


def default_output_dir() -> Path:
    return Path(platformdirs.user_pictures_dir()) / APP_NAME


@dataclass
class Settings:
    model_folders: list[str] = field(default_factory=list)
    default_model: str = ""
    output_folder: str = ""
    device: str = "auto"
    precision: str = ""  # "" = the device's default
    # How sampling saves memory: "auto" chooses per job from the free memory (engine/memory_modes).
    memory_mode: str = "auto"
    preview: str = "latent"  # "latent" (linear map) or "none"
    theme: str = "dark"
    # Where jobs run: "local" (this computer) or "comfyui" (the servers below, see README).
    backend: str = "local"
    servers: list[str] = field(default_factory=list)  # ComfyUI server URLs
    server_tokens: dict[str, str] = field(default_factory=dict)  # URL -> bearer token

    @property
    def output_path(self) -> Path:
        return Path(self.output_folder).expanduser() if self.output_folder else default_output_dir()

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or config_dir() / "settings.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, RecursionError) as exc:
            _warn_once(f"Ignoring the unreadable settings file {path}: {exc}.")
            return cls()
        return cls(**_valid_fields(cls, data, path))

    def save(self, path: Path | None = None) -> Path:
        from studio.formats.files import atomic_write_bytes

        path = path or config_dir() / "settings.json"
        data = json.dumps(asdict(self), indent=2).encode("utf-8")
        return atomic_write_bytes(path, data, overwrite=True)


# A field whose value is of the wrong kind falls back to its default; say so once a process.
_CHOICES = {
    "device": ("auto", "cuda", "mps", "cpu"),
    "precision": ("", "fp16", "bf16", "fp32"),
    "memory_mode": MEMORY_MODES,
    "preview": ("latent", "none"),
}
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


def _valid_fields(cls: type, data: object, path: Path) -> dict:
    """The fields of `data` that have the right kind of value; the others are named once."""
    if not isinstance(data, dict):
        _warn_once(f"Ignoring the settings file {path}: it is not a JSON object.")
        return {}
    defaults = cls()
    clean = {}
    for item in fields(cls):
        if item.name not in data:
            continue
        value, default = data[item.name], getattr(defaults, item.name)
        if _same_kind(value, default) and value in _CHOICES.get(item.name, (value,)):
            clean[item.name] = value
        else:
            _warn_once(
                f"Ignoring the setting {item.name} in {path} ({_shown(value)}); "
                f"using {_shown(default)} instead."
            )
    return clean


def _same_kind(value: object, default: object) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    if isinstance(default, list):
        # Lists of names (folders) must hold names; other lists are checked by their users.
        strings = not default or all(isinstance(v, str) for v in default)
        return isinstance(value, list) and (not strings or all(isinstance(v, str) for v in value))
    return isinstance(value, type(default))


def _shown(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
