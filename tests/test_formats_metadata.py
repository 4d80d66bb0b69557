"""Generation settings in images: ours, AUTOMATIC1111 and ComfyUI, written and read back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from studio.errors import ImageError
from studio.formats import metadata
from studio.formats.files import save_png
from studio.formats.metadata import (
    from_a1111,
    from_comfyui_prompt,
    parse_studio_chunk,
    read_metadata,
    studio_chunk,
    to_a1111,
)
from studio.formats.parameters import GenerationParams

CASES = {
    "plain": GenerationParams(prompt="a red fox in snow", seed=123),
    "unicode and lines": GenerationParams(
        prompt="日本の庭園, cherry blossoms\nsecond line: with a colon",
        negative_prompt="blurry, lowres\n  indented line",
        sampler="DPM++ 2M Karras",
        cfg_scale=6.5,
        seed=2**40 + 5,
        width=768,
        height=512,
    ),
    "img2img": GenerationParams(
        mode="img2img", prompt="oil painting", strength=0.55, model="dream, v2.safetensors"
    ),
    "inpaint": GenerationParams(
        mode="inpaint",
        prompt="a hat",
        strength=1.0,
        mask_grow=4,
        mask_feather=12,
        masked_only=True,
        masked_padding=64,
        color_match=True,
        guidance_rescale=0.7,
        pag_scale=3.0,
        cfg_cutoff=0.5,
    ),
    "upscale": GenerationParams(
        mode="upscale", upscaler="4x-UltraSharp.pth", upscale_factor=4.0, noise_level=20
    ),
    "upscale without name": GenerationParams(mode="upscale", steps=5),
    "batch": GenerationParams(prompt="x", seed=10, batch_size=4, batch_index=3),
    "extras": GenerationParams(
        prompt="p", extra={"Hires upscale": "2", "Note": 'said "hi", then: left'}
    ),
}


def _png_with_text(path: Path, chunks: dict[str, str], size: tuple[int, int] = (8, 8)) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_itxt(key, value)
    Image.new("RGB", size).save(path, pnginfo=info)
    return path


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_png_round_trip(tmp_path: Path, name: str) -> None:
    params = CASES[name]
    workflow = {"nodes": [{"id": 1, "type": "Sampler"}], "version": 1}
    path = save_png(
        Image.new("RGB", (8, 8)), tmp_path / "out.png", params, workflow, {"studio": "0.1"}
    )
    found = read_metadata(path)
    assert found is not None and found.source == "studio"
    assert found.params == params
    assert found.workflow == workflow
    assert found.versions == {"studio": "0.1"}


@pytest.mark.parametrize("name", CASES)
def test_a1111_text_round_trip(name: str) -> None:
    assert from_a1111(to_a1111(CASES[name])) == CASES[name]


def test_a1111_only_png_is_read(tmp_path: Path) -> None:
    params = CASES["unicode and lines"]
    path = _png_with_text(tmp_path / "a1111.png", {"parameters": to_a1111(params)})
    found = read_metadata(path)
    assert found is not None and found.source == "a1111" and found.params == params


def test_a1111_text_looks_like_a1111() -> None:
    text = to_a1111(
        GenerationParams(
            prompt="cat",
            negative_prompt="dog",
            seed=123,
            model="sd15",
            mode="img2img",
            strength=0.75,
        )
    )
    assert text == (
        "cat\nNegative prompt: dog\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x512, Model: sd15, "
        "Denoising strength: 0.75"
    )


def test_a1111_quotes_values_with_commas_colons_and_quotes() -> None:
    text = to_a1111(GenerationParams(model='a, b: "c"'))
    assert 'Model: "a, b: \\"c\\""' in text
    assert "Guidance rescale" not in text and "PAG" not in text and "Mask blur" not in text


# --- parsing A1111 text written by other programs ----------------------------------------------

OLD_STYLE = (
    "masterpiece, best quality, 1girl\n"
    "Negative prompt: lowres, bad anatomy\n"
    "Steps: 28, Sampler: Euler a, CFG scale: 11, Seed: 3405691582, Size: 512x768, "
    "Model hash: 925997e9, Model: anything-v3, Clip skip: 2, ENSD: 31337"
)

NEW_STYLE = (
    "a castle on a hill,\n"
    "dramatic lighting\n"
    "Negative prompt: blurry,\n"
    "watermark\n"
    "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234, "
    "Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
    "Denoising strength: 0.7, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, "
    'Lora hashes: "detail: a1b2c3, style: d4e5f6", '
    'Template: "a castle, {day|night}", Version: v1.9.4'
)


def test_parse_old_style() -> None:
    params = from_a1111(OLD_STYLE)
    assert params.prompt == "masterpiece, best quality, 1girl"
    assert params.negative_prompt == "lowres, bad anatomy"
    assert (params.steps, params.sampler, params.cfg_scale) == (28, "Euler a", 11.0)
    assert (params.seed, params.width, params.height) == (3405691582, 512, 768)
    assert params.model == "anything-v3" and params.mode == "txt2img"
    assert params.extra == {"Model hash": "925997e9", "Clip skip": "2", "ENSD": "31337"}


def test_parse_new_style_with_hires_fix() -> None:
    params = from_a1111(NEW_STYLE)
    assert params.prompt == "a castle on a hill,\ndramatic lighting"
    assert params.negative_prompt == "blurry,\nwatermark"
    assert params.sampler == "DPM++ 2M Karras"
    # The denoising strength of a hires fix belongs to the upscale pass, not to img2img.
    assert params.mode == "txt2img" and params.strength is None
    assert params.extra["Denoising strength"] == "0.7"
    assert params.extra["Hires upscale"] == "2"
    assert params.extra["Hires upscaler"] == "Latent"
    assert params.extra["Lora hashes"] == "detail: a1b2c3, style: d4e5f6"
    assert params.extra["Template"] == "a castle, {day|night}"
    assert "Schedule type" not in params.extra


def test_parse_img2img_and_inpaint() -> None:
    img2img = from_a1111(
        "cat\nSteps: 20, Sampler: DDIM, CFG scale: 5, Seed: 1, Denoising strength: 0.4"
    )
    assert img2img.mode == "img2img" and img2img.strength == 0.4 and img2img.sampler == "DDIM"
    inpaint = from_a1111(
        "Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 9, Size: 640x480, Denoising strength: 1, "
        "Mask blur: 4, Inpaint area: Only masked, Masked area padding: 48"
    )
    assert inpaint.mode == "inpaint" and inpaint.prompt == ""
    assert (inpaint.mask_feather, inpaint.masked_only, inpaint.masked_padding) == (4, True, 48)


def test_parse_without_negative_or_settings() -> None:
    assert from_a1111("just a prompt, nothing else") == GenerationParams(
        prompt="just a prompt, nothing else"
    )
    params = from_a1111("sunset\nSteps: 12, Sampler: LCM, CFG scale: 1.5, Seed: 7, Size: 64x64")
    assert (params.prompt, params.negative_prompt, params.sampler, params.steps) == (
        "sunset",
        "",
        "LCM",
        12,
    )


def test_parse_unknown_sampler_keeps_original() -> None:
    params = from_a1111("x\nSteps: 20, Sampler: DPM++ 2M SDE, Schedule type: Exponential, Seed: 5")
    assert params.sampler == "DPM++ SDE Karras"
    assert params.extra["Original sampler"] == "DPM++ 2M SDE Exponential"
    classic = from_a1111("x\nSteps: 20, Sampler: DPM++ SDE Karras, Seed: 5, CFG scale: 3")
    assert classic.sampler == "DPM++ SDE Karras" and not classic.extra


def test_parse_batch_position_gives_base_seed() -> None:
    params = from_a1111("x\nSteps: 20, Seed: 103, Batch size: 4, Batch pos: 3")
    assert (params.seed, params.batch_size, params.batch_index) == (100, 4, 3)


def test_parse_bad_values_are_kept_not_fatal() -> None:
    params = from_a1111("x\nSteps: many, Sampler: Euler, Seed: 1, Size: big, CFG scale: 7")
    assert params.steps == 20 and params.extra == {"Steps": "many", "Size": "big"}


# --- the studio chunk ------------------------------------------------------------------------


def test_studio_chunk_is_versioned_json() -> None:
    document = json.loads(studio_chunk(GenerationParams(seed=5), {"a": 1}, {"torch": "2.5"}))
    assert document["format"] == "studio" and document["version"] == 1
    assert document["params"]["seed"] == 5 and document["workflow"] == {"a": 1}
    assert document["versions"] == {"torch": "2.5"}


def test_newer_version_reads_what_is_known() -> None:
    document = json.loads(studio_chunk(GenerationParams(prompt="cat", steps=9)))
    document["version"] = 7
    document["params"]["hypernetwork"] = "new thing"
    document["gallery"] = {"stars": 5}
    found = parse_studio_chunk(json.dumps(document))
    assert found.params == GenerationParams(prompt="cat", steps=9) and found.version == 7


def test_migration_hook_runs_for_older_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    def rename_cfg(document: dict) -> dict:
        document["params"]["cfg_scale"] = document["params"].pop("cfg")
        return document

    monkeypatch.setattr(metadata, "STUDIO_VERSION", 2)
    monkeypatch.setitem(metadata._MIGRATIONS, 1, rename_cfg)
    old = {"format": "studio", "version": 1, "params": {"cfg": 4.5}, "workflow": None}
    assert parse_studio_chunk(json.dumps(old)).params.cfg_scale == 4.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other", "version": 1}', "not in Studio's format"),
        ('{"format": "studio", "version": "one"}', "no valid version"),
        ('{"format": "studio", "version": 1, "params": []}', "no generation parameters"),
        ('{"format": "studio", "version": 1, "params": {"steps": "lots"}}', "value for steps"),
    ],
)
def test_garbage_studio_chunk(text: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        parse_studio_chunk(text)


# --- ComfyUI -----------------------------------------------------------------------------------

TXT2IMG = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286,
            "steps": 20,
            "cfg": 8,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "denoise": 1,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5.safetensors"}},
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 512, "height": 768, "batch_size": 2},
    },
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "a bottle of galaxy", "clip": ["4", 1]},
    },
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}

IMG2IMG = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dream.safetensors"}},
    "2": {
        "class_type": "LoraLoader",
        "inputs": {"lora_name": "ink.safetensors", "strength_model": 0.8, "model": ["1", 0]},
    },
    "3": {"class_type": "PrimitiveString", "inputs": {"value": "ink drawing of a heron"}},
    "4": {"class_type": "CLIPTextEncode", "inputs": {"text": ["3", 0], "clip": ["2", 1]}},
    "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "photo", "clip": ["2", 1]}},
    "6": {
        "class_type": "ControlNetApplyAdvanced",
        "inputs": {"positive": ["4", 0], "negative": ["5", 0]},
    },
    "7": {"class_type": "LoadImage", "inputs": {"image": "heron.png"}},
    "8": {"class_type": "VAEEncode", "inputs": {"pixels": ["7", 0], "vae": ["1", 2]}},
    "9": {"class_type": "PrimitiveInt", "inputs": {"value": 42}},
    "10": {
        "class_type": "KSampler",
        "inputs": {
            "seed": ["9", 0],
            "steps": 25,
            "cfg": 6.5,
            "sampler_name": "euler_ancestral",
            "scheduler": "normal",
            "denoise": 0.6,
            "model": ["2", 0],
            "positive": ["6", 0],
            "negative": ["6", 1],
            "latent_image": ["8", 0],
        },
    },
}


def test_comfyui_txt2img() -> None:
    params = from_comfyui_prompt(json.dumps(TXT2IMG))
    assert params.mode == "txt2img" and params.strength is None
    assert (params.prompt, params.negative_prompt) == ("a bottle of galaxy", "text, watermark")
    assert (params.seed, params.steps, params.cfg_scale) == (156680208700286, 20, 8.0)
    assert (params.sampler, params.model) == ("DPM++ 2M Karras", "v1-5.safetensors")
    assert (params.width, params.height, params.batch_size) == (512, 768, 2)
    assert params.extra == {}


def test_comfyui_img2img_through_links() -> None:
    params = from_comfyui_prompt(IMG2IMG)
    assert params.mode == "img2img" and params.strength == 0.6
    assert (params.prompt, params.negative_prompt) == ("ink drawing of a heron", "photo")
    assert (params.seed, params.sampler, params.model) == (42, "Euler a", "dream.safetensors")
    assert params.extra["ComfyUI LoRAs"] == "ink.safetensors:0.8"


def test_comfyui_inpaint_and_advanced_sampler() -> None:
    graph = json.loads(json.dumps(TXT2IMG))
    graph["5"] = {
        "class_type": "VAEEncodeForInpaint",
        "inputs": {"pixels": ["10", 0], "vae": ["4", 2], "mask": ["10", 1], "grow_mask_by": 6},
    }
    graph["10"] = {"class_type": "LoadImage", "inputs": {"image": "room.png"}}
    graph["3"]["class_type"] = "KSamplerAdvanced"
    inputs = graph["3"]["inputs"]
    inputs["noise_seed"] = inputs.pop("seed")
    del inputs["denoise"]
    inputs.update(start_at_step=5, end_at_step=10000, sampler_name="dpmpp_sde", add_noise="enable")
    params = from_comfyui_prompt(graph)
    assert params.mode == "inpaint" and params.strength == 0.75 and params.mask_grow == 6
    assert params.seed == 156680208700286 and params.sampler == "DPM++ SDE Karras"


def test_comfyui_custom_sampler_and_unknown_names() -> None:
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse"}},
        "3": {
            "class_type": "CFGGuider",
            "inputs": {"model": ["1", 0], "positive": ["2", 0], "cfg": 3.5},
        },
        "4": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_3m_sde"}},
        "5": {"class_type": "BasicScheduler", "inputs": {"scheduler": "exponential", "steps": 8}},
        "6": {"class_type": "RandomNoise", "inputs": {"noise_seed": 77}},
        "7": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 640}},
        "8": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {
                "noise": ["6", 0],
                "guider": ["3", 0],
                "sampler": ["4", 0],
                "sigmas": ["5", 0],
                "latent_image": ["7", 0],
            },
        },
    }
    params = from_comfyui_prompt(graph)
    assert (params.prompt, params.seed, params.steps, params.cfg_scale) == (
        "a lighthouse",
        77,
        8,
        3.5,
    )
    assert (params.model, params.width, params.height) == ("flux.safetensors", 1024, 640)
    assert params.sampler in metadata.SAMPLERS
    assert params.extra["ComfyUI sampler"] == "dpmpp_3m_sde"
    assert params.extra["ComfyUI scheduler"] == "exponential"


def test_comfyui_hires_fix_reads_the_first_pass() -> None:
    graph = json.loads(json.dumps(TXT2IMG))
    graph["20"] = {
        "class_type": "LatentUpscale",
        "inputs": {"samples": ["3", 0], "width": 1024, "height": 1536},
    }
    graph["21"] = {
        "class_type": "KSampler",
        "inputs": dict(graph["3"]["inputs"], denoise=0.5, seed=1, latent_image=["20", 0]),
    }
    params = from_comfyui_prompt(graph)
    assert (params.seed, params.width, params.height, params.mode) == (
        156680208700286,
        512,
        768,
        "txt2img",
    )


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("{oops", "not valid JSON"),
        ("[1, 2]", "not a ComfyUI prompt"),
        ({"1": {"class_type": "SaveImage", "inputs": {}}}, "no sampler"),
    ],
)
def test_comfyui_garbage(prompt: object, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        from_comfyui_prompt(prompt)  # type: ignore[arg-type]


# --- read_metadata -------------------------------------------------------------------------------


def test_read_comfyui_png(tmp_path: Path) -> None:
    path = _png_with_text(tmp_path / "comfy.png", {"prompt": json.dumps(TXT2IMG), "workflow": "{}"})
    found = read_metadata(path)
    assert found is not None and found.source == "comfyui" and found.workflow is None
    assert found.params == from_comfyui_prompt(TXT2IMG)


def test_comfyui_img2img_takes_size_from_the_image(tmp_path: Path) -> None:
    path = _png_with_text(tmp_path / "heron.png", {"prompt": json.dumps(IMG2IMG)}, size=(40, 24))
    found = read_metadata(path)
    assert found is not None and (found.params.width, found.params.height) == (40, 24)


def test_preference_order(tmp_path: Path) -> None:
    ours = GenerationParams(prompt="ours")
    chunks = {
        "prompt": json.dumps(TXT2IMG),
        "parameters": to_a1111(GenerationParams(prompt="a1111")),
        "studio": studio_chunk(ours),
    }
    assert read_metadata(_png_with_text(tmp_path / "a.png", chunks)).params == ours
    del chunks["studio"]
    assert read_metadata(_png_with_text(tmp_path / "b.png", chunks)).params.prompt == "a1111"


def test_damaged_studio_chunk_falls_back_or_names_the_file(tmp_path: Path) -> None:
    both = {"studio": "{broken", "parameters": "cat\nSteps: 5, Seed: 1, Sampler: Euler"}
    assert read_metadata(_png_with_text(tmp_path / "a.png", both)).source == "a1111"
    with pytest.raises(ImageError, match=r"in broken\.png are not valid JSON"):
        read_metadata(_png_with_text(tmp_path / "broken.png", {"studio": "{broken"}))


def test_image_without_settings(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(path)
    assert read_metadata(path) is None
    assert read_metadata(Image.new("RGB", (4, 4))) is None


def test_read_from_open_image(tmp_path: Path) -> None:
    path = save_png(Image.new("RGB", (4, 4)), tmp_path / "x.png", CASES["plain"])
    with Image.open(path) as image:
        assert read_metadata(image).params == CASES["plain"]


def test_jpeg_exif_user_comment(tmp_path: Path) -> None:
    text = to_a1111(CASES["unicode and lines"])
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    path = tmp_path / "shared.jpg"
    Image.new("RGB", (8, 8)).save(path, exif=exif)
    found = read_metadata(path)
    assert found is not None and found.source == "a1111"
    assert found.params == CASES["unicode and lines"]


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"gone\.png was not found"):
        read_metadata(tmp_path / "gone.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(os.urandom(500))
    with pytest.raises(ImageError, match=r"junk\.png is not an image"):
        read_metadata(junk)


def test_prompt_with_colons_is_not_mistaken_for_settings() -> None:
    text = "style: ink, mood: calm, subject: heron"
    assert from_a1111(text) == GenerationParams(prompt=text)


def test_comfyui_node_without_inputs_is_tolerated() -> None:
    graph = dict(TXT2IMG, **{"99": {"class_type": "Note"}})
    assert from_comfyui_prompt(graph).prompt == "a bottle of galaxy"
