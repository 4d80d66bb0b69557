"""The bundled diffusers-format config folders and the tokenizers their pipelines need.

Single-file checkpoints carry weights but no configs and no tokenizer, so every
`from_single_file` call is given one of these folders (JSON configs only) as `config=`
and the tokenizer objects built here as components: nothing is looked up online.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from studio.errors import ModelError
from studio.paths import CLIP_TOKENIZER, MODEL_CONFIGS

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

log = logging.getLogger(__name__)

CONFIG_NAMES: tuple[str, ...] = (
    "sd1",
    "sd1-inpaint",
    "sd2",
    "sd2-v",
    "sd2-inpaint",
    "sdxl",
    "sdxl-inpaint",
    "sd-x4-upscaler",
)

# OpenCLIP (SD 2.x, the SDXL second encoder, the x4 upscaler) was trained with "!"
# (id 0) as padding; OpenAI CLIP-L pads with its end-of-text token.
OPENCLIP_PAD_TOKEN = "!"
OPENCLIP_HIDDEN_SIZES = (1024, 1280)

_tokenizers: dict[str | None, CLIPTokenizer] = {}
_tokenizers_lock = threading.Lock()


def bundled_config(name: str) -> Path:
    """The folder of the bundled config called `name` (one of CONFIG_NAMES)."""
    if name not in CONFIG_NAMES:
        known = ", ".join(CONFIG_NAMES)
        raise ModelError(
            f"There is no bundled model configuration called '{name}' (known: {known})."
        )
    folder = MODEL_CONFIGS / name
    if not (folder / "model_index.json").is_file():
        raise ModelError(
            f"The bundled model configuration '{name}' is missing from {folder}; "
            "the installation may be damaged."
        )
    return folder


def load_tokenizers(name_or_folder: str | Path) -> dict[str, CLIPTokenizer]:
    """The tokenizer components (e.g. "tokenizer", "tokenizer_2") that the config's pipeline takes."""
    folder = _config_folder(name_or_folder)
    index = _read_json(folder / "model_index.json")
    tokenizers: dict[str, CLIPTokenizer] = {}
    for component, spec in index.items():
        if not _is_tokenizer_spec(spec):
            continue
        encoder = component.replace("tokenizer", "text_encoder", 1)
        encoder_config = folder / encoder / "config.json"
        if not encoder_config.is_file():
            raise ModelError(
                f"The model configuration in {folder} has a {component} but no {encoder}/config.json."
            )
        tokenizers[component] = clip_tokenizer(_pad_token_for(_read_json(encoder_config)))
    return tokenizers


def clip_tokenizer(pad_token: str | None = None) -> CLIPTokenizer:
    """The bundled CLIP BPE tokenizer, padding with `pad_token` (None: end-of-text); loaded once.

    The object is shared: deep-copy it before anything that adds tokens (textual inversion).
    """
    with _tokenizers_lock:
        tokenizer = _tokenizers.get(pad_token)
        if tokenizer is None:
            tokenizer = _load_clip_tokenizer(pad_token)
            _tokenizers[pad_token] = tokenizer
        return tokenizer


def _load_clip_tokenizer(pad_token: str | None) -> CLIPTokenizer:
    from transformers import CLIPTokenizer

    overrides = {} if pad_token is None else {"pad_token": pad_token}
    try:
        tokenizer = CLIPTokenizer.from_pretrained(
            str(CLIP_TOKENIZER), local_files_only=True, **overrides
        )
    except (OSError, ValueError) as error:
        raise ModelError(
            f"The CLIP tokenizer files in {CLIP_TOKENIZER} could not be loaded; "
            "the installation may be damaged."
        ) from error
    log.debug("Loaded CLIP tokenizer (pad token %r)", tokenizer.pad_token)
    return tokenizer


def _config_folder(name_or_folder: str | Path) -> Path:
    if isinstance(name_or_folder, str) and name_or_folder in CONFIG_NAMES:
        return bundled_config(name_or_folder)
    folder = Path(name_or_folder)
    if not (folder / "model_index.json").is_file():
        raise ModelError(
            f"'{name_or_folder}' is neither a bundled model configuration nor a folder "
            "with a model_index.json."
        )
    return folder


def _is_tokenizer_spec(spec: object) -> bool:
    return (
        isinstance(spec, list)
        and len(spec) == 2
        and spec[0] == "transformers"
        and isinstance(spec[1], str)
        and spec[1].startswith("CLIPTokenizer")
    )


def _pad_token_for(encoder_config: dict) -> str | None:
    is_openclip = (
        encoder_config.get("hidden_act") == "gelu"
        or encoder_config.get("hidden_size") in OPENCLIP_HIDDEN_SIZES
    )
    return OPENCLIP_PAD_TOKEN if is_openclip else None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"The model configuration file {path} could not be read.") from error
    if not isinstance(data, dict):
        raise ModelError(f"The model configuration file {path} is not a JSON object.")
    return data
