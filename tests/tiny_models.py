"""Tiny random-weight Stable Diffusion models for tests and benchmarks.

Each family is built from code (deterministic random weights, a few MB) and can be written
both as a diffusers folder and as an original-layout ("LDM", A1111/ComfyUI) single-file
`.safetensors` checkpoint, so loading code can be tested on the same layouts users have.
The diffusers -> original conversion is the inverse of diffusers' single-file loader and is
driven by each model's structure, so it also gives the key layout of real-size configs
(`original_key_shapes`) without any weights.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The tokenizer and every config come from disk; make any accidental Hub lookup fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

if TYPE_CHECKING:
    import torch
    from diffusers import DiffusionPipeline

TINY_FAMILIES = ("sd1", "sd1-inpaint", "sd2-v", "sdxl", "sdxl-inpaint")

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = REPO_ROOT / "resources" / "tokenizers" / "clip"

# Text encoder widths. SDXL's two encoders must differ in width: diffusers decides which
# embedder of an SDXL single file feeds `text_encoder_2` by comparing the positional
# embedding width with the config (768 vs 1280 in real SDXL); equal widths would load the
# CLIP-L weights into text_encoder_2 and leave its projection unloaded.
CLIP_L_WIDTH = 32
OPEN_CLIP_G_WIDTH = 64
OPEN_CLIP_G_PROJECTION = 32  # differs from the width so a wrong transpose cannot go unnoticed
TIME_EMBED_DIM = 8  # SDXL addition_time_embed_dim; 6 size/crop numbers are embedded

_PIPELINES = {
    "sd1": "StableDiffusionPipeline",
    "sd1-inpaint": "StableDiffusionInpaintPipeline",
    "sd2-v": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sdxl-inpaint": "StableDiffusionXLInpaintPipeline",
}

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."


@dataclass(frozen=True)
class TinyModel:
    """One tiny family written to disk in the three shapes the app meets."""

    family: str
    pipe_folder: Path  # diffusers folder with weights and tokenizers
    config_folder: Path  # JSON configs only, like the folders shipped in resources/configs
    single_file: Path  # original-layout .safetensors checkpoint


# --------------------------------------------------------------------------- building


def _check_family(family: str) -> None:
    if family not in TINY_FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; expected one of {TINY_FAMILIES}")


def pipeline_class(family: str) -> type[DiffusionPipeline]:
    """The diffusers pipeline class a tiny family is built with."""
    _check_family(family)
    import diffusers

    return getattr(diffusers, _PIPELINES[family])


def load_tokenizers(family: str) -> dict[str, Any]:
    """The tokenizer keyword arguments of a family's pipeline, loaded from resources/."""
    _check_family(family)
    from transformers import CLIPTokenizer

    clip_l = str(TOKENIZER_DIR)
    if family.startswith("sdxl"):
        return {
            "tokenizer": CLIPTokenizer.from_pretrained(clip_l),
            # OpenCLIP pads with "!" (id 0) rather than with the end-of-text token.
            "tokenizer_2": CLIPTokenizer.from_pretrained(clip_l, pad_token="!"),
        }
    if family.startswith("sd2"):
        return {"tokenizer": CLIPTokenizer.from_pretrained(clip_l, pad_token="!")}
    return {"tokenizer": CLIPTokenizer.from_pretrained(clip_l)}


def _text_encoder(width: int, *, open_clip: bool, projection: int | None = None) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=width,
        intermediate_size=64 if open_clip else 37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        # OpenAI's CLIP uses quick_gelu, OpenCLIP the exact GELU; the conversion relies on it.
        hidden_act="gelu" if open_clip else "quick_gelu",
        projection_dim=projection or width,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )
    model_class = CLIPTextModelWithProjection if projection else CLIPTextModel
    return model_class(config)


def _unet(family: str) -> Any:
    from diffusers import UNet2DConditionModel

    common: dict[str, Any] = {
        "sample_size": 8,
        "in_channels": 9 if family.endswith("inpaint") else 4,
        "out_channels": 4,
        "layers_per_block": 1,
        "block_out_channels": (32, 64),
        "norm_num_groups": 32,
        "attention_head_dim": (2, 4),
    }
    if family.startswith("sdxl"):
        # Like SDXL: no attention in the first block, deeper transformers further down.
        return UNet2DConditionModel(
            **common,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2),
            cross_attention_dim=CLIP_L_WIDTH + OPEN_CLIP_G_WIDTH,
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=TIME_EMBED_DIM,
            projection_class_embeddings_input_dim=OPEN_CLIP_G_PROJECTION + 6 * TIME_EMBED_DIM,
        )
    sd2 = family.startswith("sd2")
    return UNet2DConditionModel(
        **common,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CLIP_L_WIDTH,
        use_linear_projection=sd2,
        upcast_attention=sd2,
    )


def _vae(family: str) -> Any:
    from diffusers import AutoencoderKL

    # Four blocks give the real 8x down-sampling.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.13025 if family.startswith("sdxl") else 0.18215,
    )


def _scheduler(family: str) -> Any:
    from diffusers import DDIMScheduler, EulerDiscreteScheduler, PNDMScheduler

    betas: dict[str, Any] = {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "steps_offset": 1,
    }
    if family.startswith("sdxl"):
        return EulerDiscreteScheduler(
            **betas, interpolation_type="linear", timestep_spacing="leading"
        )
    if family == "sd2-v":
        return DDIMScheduler(
            **betas, clip_sample=False, set_alpha_to_one=False, prediction_type="v_prediction"
        )
    return PNDMScheduler(**betas, skip_prk_steps=True, set_alpha_to_one=False)


def build_tiny_pipeline(family: str, seed: int = 0) -> DiffusionPipeline:
    """A tiny random-weight pipeline of `family`; the same seed gives the same weights."""
    import torch

    cls = pipeline_class(family)

    def seeded(offset: int, make: Callable[[], Any]) -> Any:
        # Seeding each component separately keeps its weights independent of build order.
        torch.manual_seed(seed * 1000 + offset)
        return make().eval()

    parts: dict[str, Any] = {
        "unet": seeded(0, lambda: _unet(family)),
        "vae": seeded(1, lambda: _vae(family)),
        "scheduler": _scheduler(family),
        **load_tokenizers(family),
    }
    if family.startswith("sdxl"):
        parts["text_encoder"] = seeded(2, lambda: _text_encoder(CLIP_L_WIDTH, open_clip=False))
        parts["text_encoder_2"] = seeded(
            3,
            lambda: _text_encoder(
                OPEN_CLIP_G_WIDTH, open_clip=True, projection=OPEN_CLIP_G_PROJECTION
            ),
        )
        return cls(**parts)
    open_clip = family.startswith("sd2")
    parts["text_encoder"] = seeded(2, lambda: _text_encoder(CLIP_L_WIDTH, open_clip=open_clip))
    return cls(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False)


# --------------------------------------------------------------------------- saving


def save_diffusers(pipe: DiffusionPipeline, folder: str | os.PathLike[str]) -> Path:
    """Save `pipe` as a diffusers folder with safetensors weights."""
    folder = Path(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _is_tokenizer_entry(entry: Any) -> bool:
    return isinstance(entry, list | tuple) and len(entry) == 2 and "Tokenizer" in str(entry[1])


def config_folder(
    folder_or_pipe: DiffusionPipeline | str | os.PathLike[str], out: str | os.PathLike[str]
) -> Path:
    """Write only the JSON configs of a pipeline or diffusers folder: no weights, no tokenizers."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(folder_or_pipe, str | os.PathLike):
        source = Path(folder_or_pipe)
        index = json.loads((source / "model_index.json").read_text(encoding="utf-8"))
        shutil.copyfile(source / "model_index.json", out / "model_index.json")
        for name, entry in index.items():
            if name.startswith("_") or not isinstance(entry, list) or entry[0] is None:
                continue
            if _is_tokenizer_entry(entry):
                continue
            for config_name in ("config.json", "scheduler_config.json"):
                if (source / name / config_name).is_file():
                    (out / name).mkdir(exist_ok=True)
                    shutil.copyfile(source / name / config_name, out / name / config_name)
        return out

    pipe = folder_or_pipe
    pipe.save_config(out)  # model_index.json
    for name, component in pipe.components.items():
        if component is None or _is_tokenizer_entry(pipe.config.get(name)):
            continue
        if hasattr(component, "save_config"):  # diffusers models and schedulers
            component.save_config(out / name)
        elif hasattr(component, "config") and hasattr(component.config, "save_pretrained"):
            component.config.save_pretrained(out / name)  # transformers models
    return out


def save_single_file(
    pipe: DiffusionPipeline, path: str | os.PathLike[str], *, v_pred: bool = False
) -> Path:
    """Write `pipe` as an original-layout single-file .safetensors checkpoint."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors wants contiguous tensors that share no memory with each other.
    state = {
        k: v.detach().cpu().contiguous().clone() for k, v in to_original_state_dict(pipe).items()
    }
    if v_pred:
        # The marker A1111 and ComfyUI look for; its value is never read.
        state["v_pred"] = torch.tensor([])
    save_file(state, str(path), metadata={"format": "pt"})
    return path


def make_tiny_checkpoint(family: str, tmp_dir: str | os.PathLike[str], seed: int = 0) -> TinyModel:
    """Build a tiny `family` pipeline; write its diffusers folder, config folder and single file."""
    pipe = build_tiny_pipeline(family, seed)
    root = Path(tmp_dir) / family
    return TinyModel(
        family=family,
        pipe_folder=save_diffusers(pipe, root / "diffusers"),
        config_folder=config_folder(pipe, root / "config"),
        single_file=save_single_file(
            pipe, root / f"{family}.safetensors", v_pred=family == "sd2-v"
        ),
    )


# --------------------------------------------------------------------------- conversion


class _Remap:
    """Moves tensors from a diffusers state dict to original keys, module by module.

    Every source tensor must be moved exactly once; `finish` raises on leftovers so that a
    structure this converter does not know fails loudly instead of writing a partial file.
    """

    def __init__(self, state: Mapping[str, torch.Tensor], what: str) -> None:
        self.source = dict(state)
        self.out: dict[str, torch.Tensor] = {}
        self.what = what

    def move(
        self,
        src: str,
        dst: str,
        renames: Mapping[str, str] | None = None,
        transform: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        for key in [k for k in self.source if k == src or k.startswith(src + ".")]:
            rest = key[len(src) :]
            if renames:
                for old, new in renames.items():
                    if rest.startswith("." + old + "."):
                        rest = "." + new + rest[len(old) + 1 :]
                        break
            tensor = self.source.pop(key)
            new_key = dst + rest
            self.out[new_key] = transform(new_key, tensor) if transform else tensor

    def take(self, key: str) -> torch.Tensor:
        return self.source.pop(key)

    def finish(self) -> dict[str, torch.Tensor]:
        if self.source:
            raise ValueError(f"{self.what}: no original key for {sorted(self.source)[:5]}")
        return self.out


_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}
_OPEN_CLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


def _unet_to_original(unet: Any) -> dict[str, torch.Tensor]:
    # Spatial transformers (attention blocks) keep their inner key names in both layouts,
    # linear or 1x1-conv proj_in/proj_out alike; only the block numbering differs.
    remap = _Remap(unet.state_dict(), "UNet")
    remap.move("time_embedding.linear_1", "time_embed.0")
    remap.move("time_embedding.linear_2", "time_embed.2")
    for embedding in ("add_embedding", "class_embedding"):
        remap.move(f"{embedding}.linear_1", "label_emb.0.0")
        remap.move(f"{embedding}.linear_2", "label_emb.0.2")
    remap.move("class_embedding.weight", "label_emb.weight")  # x4 upscaler's noise-level classes
    remap.move("conv_in", "input_blocks.0.0")

    index = 1
    for b, block in enumerate(unet.down_blocks):
        has_attention = getattr(block, "attentions", None) is not None
        for i in range(len(block.resnets)):
            remap.move(f"down_blocks.{b}.resnets.{i}", f"input_blocks.{index}.0", _UNET_RESNET)
            if has_attention:
                remap.move(f"down_blocks.{b}.attentions.{i}", f"input_blocks.{index}.1")
            index += 1
        if block.downsamplers is not None:
            remap.move(f"down_blocks.{b}.downsamplers.0.conv", f"input_blocks.{index}.0.op")
            index += 1

    # The middle block alternates resnet, attention, resnet, ...
    mid = unet.mid_block
    attentions = getattr(mid, "attentions", None) or []
    index = 0
    for i in range(len(mid.resnets)):
        remap.move(f"mid_block.resnets.{i}", f"middle_block.{index}", _UNET_RESNET)
        index += 1
        if i < len(attentions):
            remap.move(f"mid_block.attentions.{i}", f"middle_block.{index}")
            index += 1

    index = 0
    for b, block in enumerate(unet.up_blocks):
        has_attention = getattr(block, "attentions", None) is not None
        count = len(block.resnets)
        for i in range(count):
            remap.move(f"up_blocks.{b}.resnets.{i}", f"output_blocks.{index}.0", _UNET_RESNET)
            slot = 1
            if has_attention:
                remap.move(f"up_blocks.{b}.attentions.{i}", f"output_blocks.{index}.1")
                slot = 2
            if i == count - 1 and block.upsamplers is not None:
                remap.move(f"up_blocks.{b}.upsamplers.0.conv", f"output_blocks.{index}.{slot}.conv")
            index += 1

    remap.move("conv_norm_out", "out.0")
    remap.move("conv_out", "out.2")
    return remap.finish()


def _as_conv_1x1(key: str, tensor: torch.Tensor) -> torch.Tensor:
    # The original VAE attention projects with 1x1 convolutions; diffusers with linear layers.
    if key.endswith(".weight") and tensor.ndim == 2 and not key.endswith("norm.weight"):
        return tensor[:, :, None, None]
    return tensor


def _vae_to_original(vae: Any) -> dict[str, torch.Tensor]:
    remap = _Remap(vae.state_dict(), "VAE")
    for part in ("encoder", "decoder"):
        remap.move(f"{part}.conv_in", f"{part}.conv_in")
        remap.move(f"{part}.conv_norm_out", f"{part}.norm_out")
        remap.move(f"{part}.conv_out", f"{part}.conv_out")
        mid = getattr(vae, part).mid_block
        for i in range(len(mid.resnets)):
            remap.move(f"{part}.mid_block.resnets.{i}", f"{part}.mid.block_{i + 1}", _VAE_RESNET)
        for i in range(len(mid.attentions)):
            remap.move(
                f"{part}.mid_block.attentions.{i}",
                f"{part}.mid.attn_{i + 1}",
                _VAE_ATTENTION,
                _as_conv_1x1,
            )

    for b, block in enumerate(vae.encoder.down_blocks):
        for i in range(len(block.resnets)):
            remap.move(
                f"encoder.down_blocks.{b}.resnets.{i}", f"encoder.down.{b}.block.{i}", _VAE_RESNET
            )
        remap.move(
            f"encoder.down_blocks.{b}.downsamplers.0.conv", f"encoder.down.{b}.downsample.conv"
        )

    # The original decoder numbers its up blocks from the lowest resolution upwards in
    # reverse: diffusers' first up block is the original's last.
    count = len(vae.decoder.up_blocks)
    for b, block in enumerate(vae.decoder.up_blocks):
        level = count - 1 - b
        for i in range(len(block.resnets)):
            remap.move(
                f"decoder.up_blocks.{b}.resnets.{i}", f"decoder.up.{level}.block.{i}", _VAE_RESNET
            )
        remap.move(f"decoder.up_blocks.{b}.upsamplers.0.conv", f"decoder.up.{level}.upsample.conv")

    remap.move("quant_conv", "quant_conv")
    remap.move("post_quant_conv", "post_quant_conv")
    return remap.finish()


def _clip_to_original(encoder: Any, prefix: str) -> dict[str, torch.Tensor]:
    """OpenAI CLIP text model: the Hugging Face layout kept under `prefix`."""
    import torch

    out: dict[str, torch.Tensor] = {}
    for key, tensor in encoder.state_dict().items():
        # transformers >= 5.6 saves CLIPTextModel without its `text_model.` level; the files
        # users have were written with it.
        if not key.startswith(("text_model.", "text_projection.")):
            key = "text_model." + key
        out[prefix + key] = tensor
    # Files saved with older transformers carry position_ids as a (then persistent) buffer,
    # the SD 1.5 and SDXL releases among them. diffusers skips it on load: the model has no
    # such entry in its state dict any more.
    positions = encoder.config.max_position_embeddings
    out[prefix + "text_model.embeddings.position_ids"] = torch.arange(positions).unsqueeze(0)
    return out


def _open_clip_to_original(
    encoder: Any, prefix: str, *, dropped_last_layer: bool
) -> dict[str, torch.Tensor]:
    """OpenCLIP text tower: fused attention input projection, its own names."""
    import torch

    state = {k.removeprefix("text_model."): v for k, v in encoder.state_dict().items()}
    remap = _Remap(state, f"OpenCLIP text encoder {prefix}")
    remap.move("embeddings.token_embedding", "token_embedding")
    remap.move("embeddings.position_embedding.weight", "positional_embedding")
    remap.move("final_layer_norm", "ln_final")
    if "text_projection.weight" in state:
        # OpenCLIP multiplies x @ text_projection; a Linear layer stores the transpose.
        weight = remap.take("text_projection.weight")
        remap.out["text_projection"] = weight.T.contiguous()
    layers = encoder.config.num_hidden_layers
    for i in range(layers):
        src = f"encoder.layers.{i}"
        dst = f"transformer.resblocks.{i}"
        for kind in ("weight", "bias"):
            qkv = [remap.take(f"{src}.self_attn.{p}_proj.{kind}") for p in "qkv"]
            remap.out[f"{dst}.attn.in_proj_{kind}"] = torch.cat(qkv)
        remap.move(src, dst, _OPEN_CLIP_LAYER)
    out = remap.finish()

    if dropped_last_layer:
        # SD 2.x conditions on the penultimate layer of OpenCLIP ViT-H, so diffusers' SD2
        # text_encoder config has one layer fewer than the files (23 vs 24) and its loader
        # ignores the last block and text_projection by name. Write them (as zeros: nothing
        # reads them) so files keep the real layout.
        last = f"transformer.resblocks.{layers - 1}."
        for key in [k for k in out if k.startswith(last)]:
            extra = f"transformer.resblocks.{layers}." + key[len(last) :]
            out[extra] = torch.zeros_like(out[key])
        width = encoder.config.hidden_size
        reference = out["ln_final.weight"]
        out.setdefault(
            "text_projection",
            torch.zeros(width, width, dtype=reference.dtype, device=reference.device),
        )
    # OpenCLIP keeps its contrastive temperature next to the text tower; unused for images.
    out["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    return {prefix + k: v for k, v in out.items()}


def _is_open_clip(encoder: Any) -> bool:
    # OpenCLIP towers use the exact GELU; OpenAI CLIP (SD 1.x, SDXL's first encoder) quick_gelu.
    return getattr(encoder.config, "hidden_act", "") == "gelu"


def _components_to_original(components: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    unet = components.get("unet")
    if unet is not None:
        out.update({UNET_PREFIX + k: v for k, v in _unet_to_original(unet).items()})
    vae = components.get("vae")
    if vae is not None:
        out.update({VAE_PREFIX + k: v for k, v in _vae_to_original(vae).items()})

    encoder = components.get("text_encoder")
    encoder_2 = components.get("text_encoder_2")
    if encoder_2 is not None:
        if encoder is not None:  # SDXL base: CLIP ViT-L and OpenCLIP ViT-bigG side by side
            out.update(_clip_to_original(encoder, "conditioner.embedders.0.transformer."))
            out.update(
                _open_clip_to_original(
                    encoder_2, "conditioner.embedders.1.model.", dropped_last_layer=False
                )
            )
        else:  # SDXL refiner: OpenCLIP ViT-bigG only
            out.update(
                _open_clip_to_original(
                    encoder_2, "conditioner.embedders.0.model.", dropped_last_layer=False
                )
            )
    elif encoder is not None:
        if _is_open_clip(encoder):  # SD 2.x
            out.update(
                _open_clip_to_original(encoder, "cond_stage_model.model.", dropped_last_layer=True)
            )
        else:  # SD 1.x
            out.update(_clip_to_original(encoder, "cond_stage_model.transformer."))
    return out


def to_original_state_dict(pipe: DiffusionPipeline) -> dict[str, torch.Tensor]:
    """Convert a pipeline's UNet, VAE and text encoders to the original single-file layout."""
    return _components_to_original(pipe.components)


def original_key_shapes(config_folder: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the single file a diffusers config folder describes; no weights needed."""
    from accelerate import init_empty_weights

    folder = Path(config_folder)
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    components: dict[str, Any] = {}
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        entry = index.get(name)
        if not isinstance(entry, list) or entry[0] is None:
            continue
        library, class_name = entry
        cls = getattr(importlib.import_module(library), class_name)
        with init_empty_weights():
            if hasattr(cls, "from_config"):  # diffusers
                model = cls.from_config(cls.load_config(folder / name))
            else:  # transformers
                model = cls(cls.config_class.from_pretrained(folder / name))
        components[name] = model
    state = _components_to_original(components)
    return {key: tuple(tensor.shape) for key, tensor in state.items()}
