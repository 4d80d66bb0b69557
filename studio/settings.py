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
        except (OSError, ValueError) as exc:
            log.warning("Ignoring unreadable settings file %s: %s", path, exc)
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path | None = None) -> Path:
        from studio.formats.files import atomic_write_bytes

        path = path or config_dir() / "settings.json"
        data = json.dumps(asdict(self), indent=2).encode("utf-8")
        return atomic_write_bytes(path, data, overwrite=True)
