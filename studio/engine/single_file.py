"""An original-layout .safetensors checkpoint streamed into a diffusers pipeline.

The components are built on the meta device from the bundled config folder, filled one tensor
at a time (studio.engine.streaming), and handed to the pipeline class with the folder's
scheduler and tokenizers: peak memory is the weights in the run dtype plus one tensor.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from studio.engine.detect import CheckpointInfo
from studio.engine.streaming import SafetensorsReader, WeightMismatch, load_converted
from studio.errors import ModelError

log = logging.getLogger(__name__)

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
# Text encoders by family: (component, prefix in the file, OpenCLIP layout?).
_TEXT_ENCODERS = {
    "sd1": (("text_encoder", "cond_stage_model.transformer.", False),),
    "sd2": (("text_encoder", "cond_stage_model.model.", True),),
    "sdxl": (
        ("text_encoder", "conditioner.embedders.0.transformer.", False),
        ("text_encoder_2", "conditioner.embedders.1.model.", True),
    ),
}


def can_stream(info: CheckpointInfo) -> bool:
    """Whether this checkpoint loads through the streaming path (else diffusers' own)."""
    return (
        info.layout == "single-file"
        and info.path.suffix.lower() == ".safetensors"
        and info.family in _TEXT_ENCODERS
    )


def _meta_unet(folder: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    config = UNet2DConditionModel.load_config(folder / "unet")
    with init_empty_weights():
        return UNet2DConditionModel.from_config(config), config


def _meta_vae(folder: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    config = AutoencoderKL.load_config(folder / "vae")
    with init_empty_weights():
        return AutoencoderKL.from_config(config), config


def _meta_text_encoder(folder: Path, component: str) -> torch.nn.Module:
    config = CLIPTextConfig.from_pretrained(folder / component, local_files_only=True)
    cls = CLIPTextModelWithProjection if component == "text_encoder_2" else CLIPTextModel
    with init_empty_weights():
        return cls(config)


def _text_converter(model: torch.nn.Module, prefix: str, openclip: bool):
    # CLIPTextModel has no `text_model` wrapper in newer transformers; the conversions name
    # weights as if it had one (diffusers strips the prefix the same way).
    wrapped = hasattr(model, "text_model")

    def convert(checkpoint: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if openclip:
            converted = convert_open_clip_checkpoint(model, checkpoint, prefix=prefix)
        else:
            converted = convert_ldm_clip_checkpoint(checkpoint, prefix)
        if not wrapped:
            converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
        return converted

    return convert


def load_streamed(
    info: CheckpointInfo,
    folder: Path,
    pipeline_cls: type[DiffusionPipeline],
    dtype: torch.dtype,
    device: torch.device,
    extra: dict[str, Any],
) -> DiffusionPipeline:
    """The pipeline for `info.path`, its weights streamed in `dtype` onto `device`."""
    reader = SafetensorsReader(info.path)
    components: dict[str, Any] = {}
    try:
        unet, unet_config = _meta_unet(folder)
        load_converted(
            unet,
            reader,
            lambda c: convert_ldm_unet_checkpoint(c, unet_config),
            UNET_PREFIX,
            dtype,
            device,
        )
        components["unet"] = unet.eval()
        vae, vae_config = _meta_vae(folder)
        load_converted(
            vae,
            reader,
            lambda c: convert_ldm_vae_checkpoint(c, vae_config),
            VAE_PREFIX,
            dtype,
            device,
        )
        components["vae"] = vae.eval()
        for component, prefix, openclip in _TEXT_ENCODERS[info.family]:
            encoder = _meta_text_encoder(folder, component)
            convert = _text_converter(encoder, prefix, openclip)
            load_converted(encoder, reader, convert, prefix, dtype, device)
            components[component] = encoder.eval()
    except (WeightMismatch, KeyError) as error:
        raise ModelError(
            f"{info.path.name} does not fit the configuration in {folder.name}: {error}."
        ) from None
    finally:
        reader.close()
    pipe = pipeline_cls.from_pretrained(folder, local_files_only=True, **components, **extra)
    log.debug("Streamed %s into %s", info.path.name, pipeline_cls.__name__)
    return pipe
