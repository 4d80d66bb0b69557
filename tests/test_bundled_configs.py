"""The bundled diffusers config folders describe the published models exactly and load offline.

Models are built on the meta device (no memory, no weights), so the full-size
architectures are checked in seconds. Sockets are refused by conftest's autouse fixture.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import importlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import diffusers  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from accelerate import init_empty_weights  # noqa: E402
from diffusers.loaders.single_file_utils import (  # noqa: E402
    create_unet_diffusers_config_from_ldm,
    create_vae_diffusers_config_from_ldm,
)
from safetensors.torch import save_file  # noqa: E402

from studio.engine.configs import CONFIG_NAMES, bundled_config, load_tokenizers  # noqa: E402
from studio.errors import ModelError  # noqa: E402
from studio.paths import MODEL_CONFIGS  # noqa: E402

PIPELINES = {
    "sd1": "StableDiffusionPipeline",
    "sd1-inpaint": "StableDiffusionInpaintPipeline",
    "sd2": "StableDiffusionPipeline",
    "sd2-v": "StableDiffusionPipeline",
    "sd2-inpaint": "StableDiffusionInpaintPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sdxl-inpaint": "StableDiffusionXLInpaintPipeline",
    "sd-x4-upscaler": "StableDiffusionUpscalePipeline",
}

PREDICTION_TYPES = {
    "sd1": "epsilon",
    "sd1-inpaint": "epsilon",
    "sd2": "epsilon",
    "sd2-v": "v_prediction",
    "sd2-inpaint": "epsilon",
    "sdxl": "epsilon",
    "sdxl-inpaint": "epsilon",
    "sd-x4-upscaler": "v_prediction",
}

# Published parameter totals of the original models.
SD1_UNET = 859_520_964
SD2_UNET = 865_910_724
SDXL_UNET = 2_567_463_684
# An inpainting UNet's first convolution reads 9 channels instead of 4: 320 * 5 * 3 * 3 more.
INPAINT_EXTRA = 320 * 5 * 3 * 3
SD_VAE = 83_653_863
CLIP_L_TEXT = 123_060_480
OPENCLIP_H_TEXT_23_LAYERS = 340_387_840
OPENCLIP_BIGG_TEXT_WITH_PROJECTION = 694_659_840
# No published totals for the x4 upscaler; these equal the models built from the original
# x4-upscaling.yaml through diffusers' own LDM mapping (see test_unet_and_vae_match_ldm_config).
X4_UNET = 473_398_020
X4_VAE = 55_325_927

EXPECTED_PARAMETERS = {
    ("sd1", "unet"): SD1_UNET,
    ("sd1", "vae"): SD_VAE,
    ("sd1", "text_encoder"): CLIP_L_TEXT,
    ("sd1-inpaint", "unet"): SD1_UNET + INPAINT_EXTRA,
    ("sd1-inpaint", "vae"): SD_VAE,
    ("sd1-inpaint", "text_encoder"): CLIP_L_TEXT,
    ("sd2", "unet"): SD2_UNET,
    ("sd2", "vae"): SD_VAE,
    ("sd2", "text_encoder"): OPENCLIP_H_TEXT_23_LAYERS,
    ("sd2-v", "unet"): SD2_UNET,
    ("sd2-v", "vae"): SD_VAE,
    ("sd2-v", "text_encoder"): OPENCLIP_H_TEXT_23_LAYERS,
    ("sd2-inpaint", "unet"): SD2_UNET + INPAINT_EXTRA,
    ("sd2-inpaint", "vae"): SD_VAE,
    ("sd2-inpaint", "text_encoder"): OPENCLIP_H_TEXT_23_LAYERS,
    ("sdxl", "unet"): SDXL_UNET,
    ("sdxl", "vae"): SD_VAE,
    ("sdxl", "text_encoder"): CLIP_L_TEXT,
    ("sdxl", "text_encoder_2"): OPENCLIP_BIGG_TEXT_WITH_PROJECTION,
    ("sdxl-inpaint", "unet"): SDXL_UNET + INPAINT_EXTRA,
    ("sdxl-inpaint", "vae"): SD_VAE,
    ("sdxl-inpaint", "text_encoder"): CLIP_L_TEXT,
    ("sdxl-inpaint", "text_encoder_2"): OPENCLIP_BIGG_TEXT_WITH_PROJECTION,
    ("sd-x4-upscaler", "unet"): X4_UNET,
    ("sd-x4-upscaler", "vae"): X4_VAE,
    ("sd-x4-upscaler", "text_encoder"): OPENCLIP_H_TEXT_23_LAYERS,
}

CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]
END_OF_TEXT_ID = 49407
EXCLAMATION_ID = 0


def _index(name: str) -> dict:
    return json.loads((bundled_config(name) / "model_index.json").read_text())


def _components(name: str) -> dict[str, tuple[str, str]]:
    return {
        key: (value[0], value[1])
        for key, value in _index(name).items()
        if isinstance(value, list) and value[0] is not None
    }


def _class(library: str, class_name: str) -> type:
    return getattr(importlib.import_module(library), class_name)


def _build_on_meta(name: str, component: str) -> torch.nn.Module:
    library, class_name = _components(name)[component]
    cls = _class(library, class_name)
    folder = str(bundled_config(name))
    with init_empty_weights():
        if library == "diffusers":
            return cls.from_config(cls.load_config(folder, subfolder=component))
        return cls(cls.config_class.from_pretrained(folder, subfolder=component))


def _count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def test_config_names_are_the_bundled_folders() -> None:
    folders = {path.name for path in MODEL_CONFIGS.iterdir() if path.is_dir()}
    assert folders == set(CONFIG_NAMES)
    for name in CONFIG_NAMES:
        assert bundled_config(name) == MODEL_CONFIGS / name


def test_unknown_config_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="sd3"):
        bundled_config("sd3")
    with pytest.raises(ModelError, match="sd3"):
        load_tokenizers("sd3")


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_folder_holds_only_json_configs(name: str) -> None:
    files = [path for path in bundled_config(name).rglob("*") if path.is_file()]
    assert files and all(path.suffix == ".json" for path in files)
    assert not any(path.name.startswith("tokenizer") for path in bundled_config(name).iterdir())


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_model_index_names_existing_classes(name: str) -> None:
    index = _index(name)
    assert index["_class_name"] == PIPELINES[name]
    pipeline = getattr(diffusers, index["_class_name"])
    for component, (library, class_name) in _components(name).items():
        assert library in ("diffusers", "transformers"), component
        assert isinstance(_class(library, class_name), type), component
        if component.startswith("tokenizer"):
            assert [library, class_name] == ["transformers", "CLIPTokenizer"]
    # Every component the pipeline requires is named; the optional ones it leaves out are null.
    modules = set(pipeline._get_signature_keys(pipeline)[0])
    named = set(_components(name))
    assert named <= modules
    for module in modules - named:
        assert module in pipeline._optional_components, module
        assert index.get(module, [None, None]) == [None, None], module


def test_pipeline_flags() -> None:
    for name in ("sd1", "sd1-inpaint", "sd2", "sd2-v", "sd2-inpaint"):
        assert _index(name)["requires_safety_checker"] is False
    for name in ("sdxl", "sdxl-inpaint"):
        assert _index(name)["force_zeros_for_empty_prompt"] is True
    assert _index("sdxl-inpaint")["requires_aesthetics_score"] is False
    assert _index("sd-x4-upscaler")["max_noise_level"] == 350


@pytest.mark.parametrize(("name", "component"), sorted(EXPECTED_PARAMETERS))
def test_parameter_count_matches_published_model(name: str, component: str) -> None:
    assert _count(_build_on_meta(name, component)) == EXPECTED_PARAMETERS[(name, component)]


def test_every_model_component_is_counted() -> None:
    for name in CONFIG_NAMES:
        for component in _components(name):
            if "tokenizer" not in component and "scheduler" not in component:
                assert (name, component) in EXPECTED_PARAMETERS


@pytest.mark.parametrize(
    ("name", "scaling_factor", "force_upcast", "sample_size"),
    [
        ("sd1", 0.18215, False, 64),
        ("sd2", 0.18215, False, 64),
        ("sd2-v", 0.18215, False, 96),
        ("sdxl", 0.13025, True, 128),
        ("sdxl-inpaint", 0.13025, True, 128),
        ("sd-x4-upscaler", 0.08333, True, 128),
    ],
)
def test_vae_scaling_and_unet_size(
    name: str, scaling_factor: float, force_upcast: bool, sample_size: int
) -> None:
    vae = diffusers.AutoencoderKL.load_config(str(bundled_config(name)), subfolder="vae")
    unet = diffusers.UNet2DConditionModel.load_config(str(bundled_config(name)), subfolder="unet")
    assert vae["scaling_factor"] == scaling_factor
    assert vae["force_upcast"] is force_upcast
    assert unet["sample_size"] == sample_size


def test_text_encoder_activations() -> None:
    for name, component, act in [
        ("sd1", "text_encoder", "quick_gelu"),
        ("sd2", "text_encoder", "gelu"),
        ("sdxl", "text_encoder", "quick_gelu"),
        ("sdxl", "text_encoder_2", "gelu"),
        ("sd-x4-upscaler", "text_encoder", "gelu"),
    ]:
        config = transformers.CLIPTextConfig.from_pretrained(
            str(bundled_config(name)), subfolder=component
        )
        assert config.hidden_act == act, (name, component)
    sdxl_2 = transformers.CLIPTextConfig.from_pretrained(
        str(bundled_config("sdxl")), subfolder="text_encoder_2"
    )
    assert sdxl_2.projection_dim == 1280


# The UNet and VAE parameters of the original LDM yaml files; diffusers' own mapping turns
# them into diffusers configs, an independent derivation of the bundled JSON.
_SD1_LDM = {
    "model_channels": 320, "attention_resolutions": [4, 2, 1], "num_res_blocks": 2,
    "channel_mult": [1, 2, 4, 4], "num_heads": 8, "transformer_depth": 1, "context_dim": 768,
    "in_channels": 4, "out_channels": 4,
}  # fmt: skip
_SD2_LDM = {
    "model_channels": 320, "attention_resolutions": [4, 2, 1], "num_res_blocks": 2,
    "channel_mult": [1, 2, 4, 4], "num_head_channels": 64, "use_linear_in_transformer": True,
    "transformer_depth": 1, "context_dim": 1024, "in_channels": 4, "out_channels": 4,
}  # fmt: skip
_SDXL_LDM = {
    "adm_in_channels": 2816, "num_classes": "sequential", "model_channels": 320,
    "attention_resolutions": [4, 2], "num_res_blocks": 2, "channel_mult": [1, 2, 4],
    "num_head_channels": 64, "use_linear_in_transformer": True,
    "transformer_depth": [1, 2, 10], "context_dim": 2048, "in_channels": 4, "out_channels": 4,
}  # fmt: skip
_X4_LDM = {
    "num_classes": 1000, "model_channels": 256, "attention_resolutions": [2, 4, 8],
    "num_res_blocks": 2, "channel_mult": [1, 2, 2, 4],
    "disable_self_attentions": [True, True, True, False], "num_heads": 8,
    "transformer_depth": 1, "context_dim": 1024, "use_linear_in_transformer": True,
    "in_channels": 7, "out_channels": 4,
}  # fmt: skip
_SD_VAE_LDM = {
    "ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "z_channels": 4,
    "in_channels": 3, "out_ch": 3,
}  # fmt: skip
_X4_VAE_LDM = {**_SD_VAE_LDM, "ch_mult": [1, 2, 4]}

LDM_CONFIGS = {
    "sd1": (_SD1_LDM, _SD_VAE_LDM, 0.18215),
    "sd1-inpaint": ({**_SD1_LDM, "in_channels": 9}, _SD_VAE_LDM, 0.18215),
    "sd2": (_SD2_LDM, _SD_VAE_LDM, 0.18215),
    "sd2-v": (_SD2_LDM, _SD_VAE_LDM, 0.18215),
    "sd2-inpaint": ({**_SD2_LDM, "in_channels": 9}, _SD_VAE_LDM, 0.18215),
    "sdxl": (_SDXL_LDM, _SD_VAE_LDM, 0.13025),
    "sdxl-inpaint": ({**_SDXL_LDM, "in_channels": 9}, _SD_VAE_LDM, 0.13025),
    "sd-x4-upscaler": (_X4_LDM, _X4_VAE_LDM, 0.08333),
}

UNET_FIELDS = (
    "in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels",
    "layers_per_block", "cross_attention_dim", "attention_head_dim", "use_linear_projection",
    "addition_embed_type", "addition_time_embed_dim", "projection_class_embeddings_input_dim",
    "class_embed_type",
)  # fmt: skip
VAE_FIELDS = ("block_out_channels", "down_block_types", "up_block_types", "latent_channels",
              "layers_per_block", "scaling_factor")  # fmt: skip


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_unet_and_vae_match_ldm_config(name: str) -> None:
    unet_params, vae_params, scale_factor = LDM_CONFIGS[name]
    original = {
        "model": {
            "params": {
                "scale_factor": scale_factor,
                "unet_config": {"params": unet_params},
                "first_stage_config": {"params": {"ddconfig": vae_params}},
            }
        }
    }
    folder = str(bundled_config(name))
    derived_unet = create_unet_diffusers_config_from_ldm(original, checkpoint={})
    bundled_unet = diffusers.UNet2DConditionModel.load_config(folder, subfolder="unet")
    for field in UNET_FIELDS:
        assert bundled_unet.get(field) == derived_unet.get(field), field
    depth = derived_unet["transformer_layers_per_block"]
    assert bundled_unet.get("transformer_layers_per_block", 1) == depth
    assert bundled_unet.get("num_class_embeds") == derived_unet.get("num_class_embeds")
    assert bundled_unet.get("only_cross_attention", False) == derived_unet.get(
        "only_cross_attention", False
    )
    if name == "sd-x4-upscaler":
        with init_empty_weights():
            from_ldm = diffusers.UNet2DConditionModel.from_config(derived_unet)
            vae_from_ldm = diffusers.AutoencoderKL.from_config(
                create_vae_diffusers_config_from_ldm(original, checkpoint={})
            )
        assert _count(from_ldm) == X4_UNET
        assert _count(vae_from_ldm) == X4_VAE

    derived_vae = create_vae_diffusers_config_from_ldm(original, checkpoint={})
    bundled_vae = diffusers.AutoencoderKL.load_config(folder, subfolder="vae")
    for field in VAE_FIELDS:
        assert bundled_vae[field] == derived_vae[field], field


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_schedulers_load(name: str) -> None:
    folder = str(bundled_config(name))
    for component, (library, class_name) in _components(name).items():
        if "scheduler" not in component:
            continue
        cls = _class(library, class_name)
        raw = json.loads((bundled_config(name) / component / "scheduler_config.json").read_text())
        accepted = set(inspect.signature(cls.__init__).parameters)
        assert {key for key in raw if not key.startswith("_")} <= accepted, component
        scheduler = cls.from_pretrained(folder, subfolder=component, local_files_only=True)
        assert type(scheduler) is cls
        config = scheduler.config
        assert config.num_train_timesteps == 1000
        assert config.beta_schedule == "scaled_linear"
        if component == "low_res_scheduler":
            # The x4 upscaler noises its low-resolution input on a DDPM schedule.
            assert (config.beta_start, config.beta_end) == (0.0001, 0.02)
            assert config.variance_type == "fixed_small"
            continue
        assert config.prediction_type == PREDICTION_TYPES[name]
        assert config.steps_offset == 1
        assert config.timestep_spacing == "leading"
        betas = (0.0001, 0.02) if name == "sd-x4-upscaler" else (0.00085, 0.012)
        assert (config.beta_start, config.beta_end) == betas


EXPECTED_PADS = {
    "sd1": {"tokenizer": END_OF_TEXT_ID},
    "sd1-inpaint": {"tokenizer": END_OF_TEXT_ID},
    "sd2": {"tokenizer": EXCLAMATION_ID},
    "sd2-v": {"tokenizer": EXCLAMATION_ID},
    "sd2-inpaint": {"tokenizer": EXCLAMATION_ID},
    "sdxl": {"tokenizer": END_OF_TEXT_ID, "tokenizer_2": EXCLAMATION_ID},
    "sdxl-inpaint": {"tokenizer": END_OF_TEXT_ID, "tokenizer_2": EXCLAMATION_ID},
    "sd-x4-upscaler": {"tokenizer": EXCLAMATION_ID},
}


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_tokenizers(name: str) -> None:
    tokenizers = load_tokenizers(name)
    assert {key: t.pad_token_id for key, t in tokenizers.items()} == EXPECTED_PADS[name]
    for tokenizer in tokenizers.values():
        assert tokenizer("a photo of a cat").input_ids == CAT_IDS
        assert tokenizer.model_max_length == 77
        padded = tokenizer("a photo of a cat", padding="max_length", max_length=77).input_ids
        assert len(padded) == 77 and padded[7] == tokenizer.pad_token_id
    # Loaded once: the same objects come back, also when given the folder itself.
    again = load_tokenizers(bundled_config(name))
    assert all(again[key] is tokenizers[key] for key in tokenizers)


def test_tokenizers_need_a_config_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model_index.json"):
        load_tokenizers(tmp_path)


# A few real tensors in original (LDM) layout, with the shapes of the full models, so
# from_single_file runs its real conversion and shape checks against the bundled configs.
def _skeleton_checkpoint(name: str) -> dict[str, torch.Tensor]:
    unet = diffusers.UNet2DConditionModel.load_config(str(bundled_config(name)), subfolder="unet")
    vae = diffusers.AutoencoderKL.load_config(str(bundled_config(name)), subfolder="vae")
    first = unet["block_out_channels"][0]
    time_dim = first * 4
    half = torch.float16
    tensors = {
        "model.diffusion_model.input_blocks.0.0.weight": torch.ones(
            first, unet["in_channels"], 3, 3, dtype=half
        ),
        "model.diffusion_model.time_embed.0.weight": torch.ones(time_dim, first, dtype=half),
        "first_stage_model.encoder.conv_in.weight": torch.ones(
            vae["block_out_channels"][0], 3, 3, 3, dtype=half
        ),
        "first_stage_model.quant_conv.weight": torch.ones(8, 8, 1, 1, dtype=half),
    }
    if name.startswith("sd1"):
        key = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
        tensors[key] = torch.ones(77, 768, dtype=half)
    if name.startswith("sdxl"):
        adm = unet["projection_class_embeddings_input_dim"]
        tensors |= {
            "model.diffusion_model.label_emb.0.0.weight": torch.ones(time_dim, adm, dtype=half),
            "model.diffusion_model.label_emb.0.0.bias": torch.ones(time_dim, dtype=half),
            "model.diffusion_model.label_emb.0.2.weight": torch.ones(
                time_dim, time_dim, dtype=half
            ),
            "model.diffusion_model.label_emb.0.2.bias": torch.ones(time_dim, dtype=half),
            "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": (
                torch.ones(77, 768, dtype=half)
            ),
            "conditioner.embedders.1.model.positional_embedding": torch.ones(77, 1280, dtype=half),
        }
    if name == "sd-x4-upscaler":
        tensors["model.diffusion_model.label_emb.weight"] = torch.ones(1000, time_dim, dtype=half)
    return tensors


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_from_single_file_uses_only_the_bundled_folder(name: str, tmp_path: Path) -> None:
    checkpoint = tmp_path / f"{name}.safetensors"
    save_file(_skeleton_checkpoint(name), str(checkpoint))
    pipeline_class = getattr(diffusers, PIPELINES[name])
    extra: dict[str, object] = {}
    if name.startswith("sd2") or name == "sd-x4-upscaler":
        # OpenCLIP's detection key is its 49408 x 1024 token embedding: too big for a test
        # file, so the text encoder is handed over (the SDXL case covers OpenCLIP conversion).
        extra["text_encoder"] = _build_on_meta(name, "text_encoder")
    # device="meta" keeps the mostly-missing weights on the meta device instead of failing
    # to move them to the CPU; everything before that is the real loading path.
    pipe = pipeline_class.from_single_file(
        str(checkpoint),
        config=str(bundled_config(name)),
        local_files_only=True,
        device="meta",
        **load_tokenizers(name),
        **extra,
    )
    assert type(pipe) is pipeline_class
    assert pipe.unet.config.in_channels == _expected_unet_channels(name)
    assert pipe.scheduler.config.prediction_type == PREDICTION_TYPES[name]
    for key, tokenizer in load_tokenizers(name).items():
        assert getattr(pipe, key) is tokenizer
    if name.startswith("sd1"):
        assert pipe.text_encoder.embeddings.position_embedding.weight.device.type == "cpu"
    if name.startswith("sdxl"):
        encoder_2 = pipe.text_encoder_2.text_model
        assert encoder_2.embeddings.position_embedding.weight.device.type == "cpu"
        assert pipe.watermark is None
    if name == "sd-x4-upscaler":
        assert type(pipe.low_res_scheduler) is diffusers.DDPMScheduler


def _expected_unet_channels(name: str) -> int:
    return {"sd-x4-upscaler": 7}.get(name, 9 if name.endswith("inpaint") else 4)


def test_config_must_be_given_as_a_string(tmp_path: Path) -> None:
    """diffusers' model loaders reject a Path for `config`; callers must pass str(folder)."""
    checkpoint = tmp_path / "sd1.safetensors"
    save_file(_skeleton_checkpoint("sd1"), str(checkpoint))
    with pytest.raises(ValueError, match="config"):
        diffusers.StableDiffusionPipeline.from_single_file(
            str(checkpoint),
            config=bundled_config("sd1"),
            local_files_only=True,
            device="meta",
            **load_tokenizers("sd1"),
        )
