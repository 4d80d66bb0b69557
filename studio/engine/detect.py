"""Recognise a checkpoint's model family from its state dict alone (key names and shapes).

Nothing here loads weights onto a device: safetensors headers are read lazily, and pickle
checkpoints are opened with ``torch.load(weights_only=True)`` so that no code in them can run.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from studio.errors import ModelError

log = logging.getLogger(__name__)

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
CHECKPOINT_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES

UNET = "model.diffusion_model."
UNET_INPUT = UNET + "input_blocks.0.0.weight"
SDXL_ADM = UNET + "label_emb.0.0.weight"
UPSCALER_CLASS_EMBED = UNET + "label_emb.weight"
# A LayerNorm bias deep in the UNet: v-prediction SD 2.x checkpoints have a clearly wider spread.
SD2_V_PROBE = UNET + "output_blocks.11.1.transformer_blocks.0.norm1.bias"

TEXT_CLIP_L = ("cond_stage_model.transformer.", "conditioner.embedders.0.transformer.")
TEXT_OPENCLIP = ("cond_stage_model.model.",)
TEXT_SDXL_G = ("conditioner.embedders.1.model.",)

# Cross-attention (context) width of each family's real UNet.
STANDARD_CONTEXT = {"sd1": 768, "sd2": 1024, "sdxl": 2048, "sd-x4-upscaler": 1024}

FAMILY_LABELS = {
    "sd1": "SD 1.x",
    "sd2": "SD 2.x",
    "sdxl": "SDXL",
    "sd-x4-upscaler": "SD x4 upscaler",
}


@dataclass(frozen=True)
class CheckpointInfo:
    """What a model file is, as far as the state dict tells."""

    path: Path
    layout: str  # "single-file" or "diffusers"
    family: str  # "sd1", "sd2", "sdxl" or "sd-x4-upscaler"
    inpaint: bool = False
    prediction: str = "epsilon"  # or "v_prediction"
    zero_snr: bool = False
    # True when the layer widths match the real family, so the bundled config fits the weights.
    standard: bool = True

    @property
    def config_name(self) -> str:
        """Name of the bundled config folder in resources/configs/ for this kind of model."""
        if self.family == "sd-x4-upscaler":
            return self.family
        if self.inpaint:
            return f"{self.family}-inpaint"
        if self.family == "sd2" and self.prediction == "v_prediction":
            return "sd2-v"
        return self.family

    @property
    def label(self) -> str:
        text = FAMILY_LABELS[self.family]
        if self.inpaint:
            text += " inpainting"
        if self.prediction == "v_prediction":
            text += " (v-prediction)"
        if not self.standard:
            text += " (non-standard size)"
        return text


def read_state_dict_shapes(
    path: Path,
) -> tuple[dict[str, tuple[int, ...]], dict[str, torch.Tensor]]:
    """Key -> shape for a checkpoint file, plus the few small tensors detection looks at."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"Model file not found: {path}.")
    if path.is_dir():
        raise ModelError(f"{path} is a folder, not a checkpoint file.")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _safetensors_shapes(path)
    if suffix in PICKLE_SUFFIXES:
        return _pickle_shapes(path)
    raise ModelError(f"{path.name} is not a model file: expected .safetensors, .ckpt, .pt or .pth.")


def _safetensors_shapes(path: Path):
    from safetensors import SafetensorError, safe_open

    probes = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            keys = list(handle.keys())
            shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in keys}
            for key in ("v_pred", "ztsnr", SD2_V_PROBE):
                if key in shapes:
                    probes[key] = handle.get_tensor(key)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"{path.name} is not a readable .safetensors file (truncated or corrupt): {exc}."
        ) from None
    return shapes, probes


def load_pickle_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a pickle checkpoint with weights_only=True, so embedded code can never run."""
    from studio.formats.weights import check_pickle_weights

    # Its declared sizes are checked first: torch would allocate whatever they say.
    check_pickle_weights(path)
    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            # Legacy (non-zip) files cannot be memory-mapped.
            if "mmap" not in str(exc):
                raise
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelError(
            f"Refused to load {path.name}: it contains code or objects other than weights "
            f"({_first_line(exc)}). Use a .safetensors version of this model."
        ) from None
    except Exception as exc:  # torch raises KeyError, RuntimeError, EOFError... on damage
        raise ModelError(
            f"{path.name} is not a readable checkpoint (truncated or corrupt): {_first_line(exc)}."
        ) from None
    while isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise ModelError(f"{path.name} does not hold a state dict of weights.")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
    return text[:200]


def _pickle_shapes(path: Path):
    state = load_pickle_state_dict(path)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    probes = {k: state[k] for k in ("v_pred", "ztsnr", SD2_V_PROBE) if k in state}
    return shapes, probes


def _context_width(shapes: dict[str, tuple[int, ...]]) -> int | None:
    for key, shape in shapes.items():
        if key.startswith(UNET) and key.endswith("attn2.to_k.weight") and len(shape) == 2:
            return shape[1]
    return None


def _has_prefix(shapes: dict, prefixes: tuple[str, ...]) -> bool:
    return any(key.startswith(prefixes) for key in shapes)


def classify(
    shapes: dict[str, tuple[int, ...]],
    probes: dict[str, torch.Tensor] | None = None,
    path: Path = Path("model"),
) -> CheckpointInfo:
    """Decide the family of an original-layout state dict from key names and shapes."""
    probes = probes or {}
    name = path.name
    if UNET_INPUT not in shapes:
        if _has_prefix(shapes, ("encoder.", "decoder.", "first_stage_model.")) and not _has_prefix(
            shapes, (UNET,)
        ):
            raise ModelError(f"{name} looks like a VAE on its own, not a full checkpoint.")
        if _has_prefix(shapes, ("lora_", "lora_unet_", "lora_te")) or any(
            ".lora_" in k or "lora_down" in k for k in shapes
        ):
            raise ModelError(f"{name} is a LoRA, not a full checkpoint.")
        raise ModelError(
            f"{name} is not a recognised Stable Diffusion checkpoint (no UNet weights found)."
        )

    in_channels = shapes[UNET_INPUT][1]
    context = _context_width(shapes)

    if SDXL_ADM in shapes or _has_prefix(shapes, TEXT_SDXL_G):
        adm = shapes.get(SDXL_ADM, (0, 2816))[1]
        if adm == 2560 or context == 1280:
            raise ModelError(f"{name} is an SDXL refiner, which is not supported yet.")
        family = "sdxl"
    elif UPSCALER_CLASS_EMBED in shapes and in_channels == 7:
        family = "sd-x4-upscaler"
    elif _has_prefix(shapes, TEXT_OPENCLIP) or context == 1024:
        family = "sd2"
    elif _has_prefix(shapes, TEXT_CLIP_L) or context == 768:
        family = "sd1"
    else:
        raise ModelError(
            f"{name} is not a recognised Stable Diffusion checkpoint "
            f"(cross-attention width {context}, no known text encoder)."
        )

    if family != "sd-x4-upscaler" and in_channels not in (4, 9):
        kind = (
            "an InstructPix2Pix model"
            if in_channels == 8
            else f"a model with {in_channels} input channels"
        )
        raise ModelError(f"{name} is {kind}, which is not supported yet.")
    inpaint = in_channels == 9

    prediction = "epsilon"
    if "v_pred" in probes or "v_pred" in shapes:
        prediction = "v_prediction"
    elif family == "sd2" and not inpaint and SD2_V_PROBE in probes:
        if float(probes[SD2_V_PROBE].float().std(unbiased=False)) > 0.09:
            prediction = "v_prediction"

    return CheckpointInfo(
        path=path,
        layout="single-file",
        family=family,
        inpaint=inpaint,
        prediction=prediction,
        zero_snr="ztsnr" in shapes,
        standard=context == STANDARD_CONTEXT[family],
    )


def _diffusers_folder_info(path: Path) -> CheckpointInfo:
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
        unet = json.loads((path / "unet" / "config.json").read_text(encoding="utf-8"))
        sched_file = path / "scheduler" / "scheduler_config.json"
        scheduler = (
            json.loads(sched_file.read_text(encoding="utf-8")) if sched_file.exists() else {}
        )
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path.name} is not a readable diffusers model folder: {exc}.") from None
    if not any((path / "unet").glob("*.safetensors")) and not any((path / "unet").glob("*.bin")):
        raise ModelError(f"{path.name} holds model configs but no weights.")
    pipeline = index.get("_class_name", "")
    context = unet.get("cross_attention_dim")
    if isinstance(context, list):
        context = context[0]
    in_channels = unet.get("in_channels", 4)
    if pipeline == "StableDiffusionUpscalePipeline":
        family = "sd-x4-upscaler"
    elif "XL" in pipeline or unet.get("addition_embed_type") == "text_time":
        family = "sdxl"
    elif "text_encoder" in index and context == 1024:
        family = "sd2"
    elif pipeline.startswith("StableDiffusion"):
        family = "sd2" if _text_encoder_is_openclip(path) else "sd1"
    else:
        raise ModelError(f"{path.name} holds a '{pipeline}', which Studio does not support.")
    return CheckpointInfo(
        path=path,
        layout="diffusers",
        family=family,
        inpaint=in_channels == 9,
        prediction=scheduler.get("prediction_type", "epsilon"),
        zero_snr=bool(scheduler.get("rescale_betas_zero_snr", False)),
        standard=context == STANDARD_CONTEXT[family],
    )


def _text_encoder_is_openclip(path: Path) -> bool:
    try:
        config = json.loads((path / "text_encoder" / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return config.get("hidden_act") == "gelu"


def detect(path: str | Path) -> CheckpointInfo:
    """Detect the family of a checkpoint file or diffusers folder; ModelError if unknown."""
    path = Path(path).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").exists():
            raise ModelError(f"{path} is a folder without model_index.json, not a diffusers model.")
        _check_folder_pickles(path)
        return _diffusers_folder_info(path)
    shapes, probes = read_state_dict_shapes(path)
    if not shapes:
        raise ModelError(f"{path.name} holds no weights.")
    info = classify(shapes, probes, path)
    log.info("%s: %s", path.name, info.label)
    return info


def _check_folder_pickles(folder: Path) -> None:
    """diffusers reads a folder's .bin weights with torch.load: check their sizes first."""
    from studio.formats.weights import check_pickle_weights

    for item in sorted(folder.glob("*/*")):
        if item.suffix.lower() in PICKLE_SUFFIXES and item.is_file():
            check_pickle_weights(item)


def is_diffusion_checkpoint(path: str | Path) -> bool:
    """True for a Stable Diffusion checkpoint or diffusers folder, False for anything else."""
    path = Path(path).expanduser()
    if path.is_dir():
        return (path / "model_index.json").exists()
    shapes, _ = read_state_dict_shapes(path)
    return any(key.startswith(UNET) for key in shapes)
