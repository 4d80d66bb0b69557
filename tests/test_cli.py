"""The `studio` command as a user runs it: files written, metadata inside, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.cli import main
from studio.formats.metadata import read_metadata


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def model_args(tiny) -> list[str]:
    return ["--model", str(tiny.single_file), "--config", str(tiny.config_folder)]


def test_generate_writes_a_png_with_its_parameters(tmp_path, capsys, tiny_sd1):
    target = tmp_path / "out.png"
    code, out, err = run(
        capsys,
        "generate",
        "a red circle",
        *model_args(tiny_sd1),
        "--steps",
        3,
        "--seed",
        42,
        "--size",
        "64x64",
        "--negative",
        "blurry",
        "-o",
        target,
    )
    assert code == 0, err
    assert out.strip() == str(target)
    meta = read_metadata(target)
    assert meta.source == "studio"
    assert (meta.params.prompt, meta.params.negative_prompt, meta.params.seed) == (
        "a red circle",
        "blurry",
        42,
    )
    assert meta.params.steps == 3 and meta.versions["diffusers"]
    assert "Steps: 3" in Image.open(target).text["parameters"]

    # Never overwritten: the same command writes a second file beside the first.
    code, out, _ = run(
        capsys,
        "generate",
        "a red circle",
        *model_args(tiny_sd1),
        "--steps",
        3,
        "--seed",
        42,
        "--size",
        "64x64",
        "--negative",
        "blurry",
        "-o",
        target,
    )
    assert code == 0 and out.strip() == str(tmp_path / "out-0001.png")
    assert np.array_equal(np.asarray(Image.open(target)), np.asarray(Image.open(out.strip())))


def test_batch_writes_one_file_per_seed(tmp_path, capsys, tiny_sd1):
    code, out, _ = run(
        capsys,
        "generate",
        "",
        *model_args(tiny_sd1),
        "--steps",
        2,
        "--seed",
        5,
        "--size",
        "64x64",
        "--batch",
        2,
        "-o",
        tmp_path / "b.png",
    )
    paths = out.split()
    assert code == 0 and len(paths) == 2
    assert [read_metadata(p).params.seed for p in paths] == [5, 6]


def test_inpaint_from_the_command_line(tmp_path, capsys, tiny_sd1):
    photo = Image.new("RGB", (120, 96), (40, 90, 160))
    ImageDraw.Draw(photo).ellipse((10, 10, 60, 60), fill=(220, 40, 40))
    photo.save(tmp_path / "photo.png")
    mask = Image.new("L", (120, 96), 0)
    ImageDraw.Draw(mask).rectangle((70, 30, 100, 70), fill=255)
    mask.save(tmp_path / "mask.png")
    code, out, err = run(
        capsys,
        "generate",
        "a blue square",
        *model_args(tiny_sd1),
        "--steps",
        3,
        "--init",
        tmp_path / "photo.png",
        "--mask",
        tmp_path / "mask.png",
        "--feather",
        4,
        "-o",
        tmp_path / "inpainted.png",
    )
    assert code == 0, err
    result = np.asarray(Image.open(out.strip()))
    before = np.asarray(photo)
    assert result.shape == before.shape
    assert np.array_equal(result[:, :65], before[:, :65])
    assert (result[35:65, 75:95] != before[35:65, 75:95]).any()
    assert read_metadata(out.strip()).params.mode == "inpaint"


@pytest.mark.parametrize("family", ["tiny_sd1", "tiny_sd1_inpaint"])
def test_outpaint_from_the_command_line(tmp_path, capsys, request, family):
    """--outpaint grows the picture, fills the new strip from the edge and inpaints it, with a
    4-channel model and with a 9-channel inpainting one; the old picture stays as it was."""
    tiny = request.getfixturevalue(family)
    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(60, 200, (64, 80, 3), dtype=np.uint8), "RGB")
    photo.save(tmp_path / "photo.png")
    code, out, err = run(
        capsys,
        "generate",
        "a field",
        *model_args(tiny),
        "--steps",
        2,
        "--init",
        tmp_path / "photo.png",
        "--outpaint",
        "0,0,32,16",
        "--feather",
        4,
        "-o",
        tmp_path / "wider.png",
    )
    assert code == 0, err
    result = np.asarray(Image.open(out.strip()).convert("RGB"))
    assert result.shape == (80, 112, 3)
    # Far from the new area (farther than the feathered edge) nothing changed.
    assert np.array_equal(result[:56, :72], np.asarray(photo)[:56, :72])
    new = result[:, 80:].astype(np.int16)
    assert new.mean() > 20 and new.std() > 1  # painted, not flat black
    params = read_metadata(out.strip()).params
    assert params.mode == "inpaint"


def test_outpaint_is_refused_before_any_model_loads(tmp_path, capsys):
    Image.new("RGB", (64, 64)).save(tmp_path / "p.png")
    Image.new("L", (64, 64)).save(tmp_path / "m.png")
    cases = [
        (["--outpaint", "0,0,64,0"], "--outpaint needs --init"),
        (["--init", tmp_path / "p.png", "--outpaint", "0,0,0,0"], "at least one side"),
        (["--init", tmp_path / "p.png", "--outpaint", "1,2"], "LEFT,TOP,RIGHT,BOTTOM"),
        (
            ["--init", tmp_path / "p.png", "--mask", tmp_path / "m.png", "--outpaint", "8"],
            "takes no --mask",
        ),
        (["--init", tmp_path / "p.png", "--outpaint", "8192"], "megapixels"),
    ]
    for extra, message in cases:
        code, _, err = run(capsys, "generate", "x", "--model", "m.safetensors", *extra)
        assert code == 2 and message in err, (extra, err)


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "x", "--model", "missing.safetensors"], "Model file not found"),
        (
            ["generate", "x", "--steps", "0", "--model", "m.safetensors"],
            '"steps" must be at least 1',
        ),
        (["generate", "x", "--size", "20000x20000", "--model", "m.safetensors"], "at most 8192"),
        (["generate", "x", "--mask", "m.png"], "--mask needs --init"),
        (["generate", "x", "--init", "nope.png"], "nope.png"),
        (["upscale", "nope.png"], "nope.png"),
        (["info", "nope.png"], "nope.png"),
        (
            ["generate", "x", "--sampler", "Bogus", "--model", "m.safetensors"],
            '"sampler" must be one of',
        ),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert list(tmp_path.iterdir()) == []


def test_mask_of_another_size_is_refused(tmp_path, capsys, tiny_sd1):
    Image.new("RGB", (80, 64)).save(tmp_path / "p.png")
    Image.new("L", (64, 64)).save(tmp_path / "m.png")
    code, _, err = run(
        capsys,
        "generate",
        "x",
        *model_args(tiny_sd1),
        "--init",
        tmp_path / "p.png",
        "--mask",
        tmp_path / "m.png",
    )
    assert code == 2 and "64x64" in err and "80x64" in err


def test_models_lists_families_and_upscalers(tmp_path, capsys, tiny_sd1, tiny_sdxl):
    import shutil

    import torch
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    shutil.copy(tiny_sd1.single_file, tmp_path / "a.safetensors")
    shutil.copy(tiny_sdxl.single_file, tmp_path / "b.safetensors")
    torch.manual_seed(0)
    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "up.safetensors")
    (tmp_path / "junk.ckpt").write_bytes(b"not a model")
    code, out, _ = run(capsys, "models", tmp_path)
    lines = {line.split()[-1].rsplit("/", 1)[-1]: line for line in out.splitlines()}
    assert code == 0
    assert "SD 1.x" in lines["a.safetensors"] and "SDXL" in lines["b.safetensors"]
    assert "ESRGAN x2" in lines["up.safetensors"]
    assert lines["junk.ckpt"].startswith("unusable")


def test_upscale_with_lanczos_and_info(tmp_path, capsys):
    Image.new("RGB", (40, 30), (10, 200, 30)).save(tmp_path / "small.png")
    code, out, _ = run(
        capsys, "upscale", tmp_path / "small.png", "--scale", 3, "-o", tmp_path / "big.png"
    )
    assert code == 0 and Image.open(out.strip()).size == (120, 90)
    code, out, _ = run(capsys, "info", tmp_path / "big.png")
    assert code == 0 and "Lanczos" in out


COMFY_TXT2IMG = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 5,
            "steps": 3,
            "cfg": 6.0,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "denoise": 1.0,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "comfy", "images": ["8", 0]}},
}


def test_run_a_comfyui_workflow_with_changes(tmp_path, capsys, tiny_sd1):
    import json

    workflow = tmp_path / "comfy.json"
    workflow.write_text(json.dumps(COMFY_TXT2IMG))
    code, out, err = run(
        capsys,
        "run",
        workflow,
        "--set",
        f"c4.path={tiny_sd1.single_file}",
        "--set",
        f"c4.config={tiny_sd1.config_folder}",
        "--set",
        f"c9.folder={tmp_path}",
        "--set",
        "c3.seed=9",
    )
    assert code == 0, err
    meta = read_metadata(out.strip())
    assert (meta.params.seed, meta.params.sampler, meta.params.steps) == (9, "DPM++ 2M Karras", 3)
    assert meta.workflow["nodes"]  # the graph that made it travels with it


def test_run_reports_a_missing_canvas_image(tmp_path, capsys, tiny_sd1):
    from studio.nodes.defaults import WORKFLOWS

    code, _, err = run(
        capsys,
        "run",
        WORKFLOWS / "img2img.json",
        "--set",
        f"model.path={tiny_sd1.single_file}",
        "--set",
        f"model.config={tiny_sd1.config_folder}",
    )
    assert code == 2 and "needs an image from the canvas" in err


def test_the_memory_mode_is_asked_for_on_the_command_line(tmp_path, capsys, tiny_sd1):
    """--memory-mode: a bad one is one line; a forced slicing is in the PNG's A1111 text; an
    offload on the CPU is a one-line note and the image is still made."""
    code, _, err = run(capsys, "generate", "x", "--memory-mode", "turbo")
    assert code == 2 and err.count("\n") == 1 and "not a memory mode" in err, err
    common = [*model_args(tiny_sd1), "--device", "cpu", "--steps", 2, "--size", "64x64"]
    sliced = tmp_path / "sliced.png"
    code, _, err = run(
        capsys, "generate", "a cat", *common, "--memory-mode", "attention-slicing", "-o", sliced
    )
    assert code == 0, err
    assert "note: Using attention slicing (chosen in the settings)" in err
    assert "memory: attention slicing" in Image.open(sliced).text["parameters"]
    assert read_metadata(sliced).params.extra["memory"] == "attention slicing"
    offload = tmp_path / "offload.png"
    code, _, err = run(
        capsys, "generate", "a cat", *common, "--memory-mode", "model-offload", "-o", offload
    )
    assert code == 0 and offload.exists(), err
    assert "note: Model offload needs a CUDA GPU; this job runs on the CPU without it." in err
    assert "memory:" not in Image.open(offload).text["parameters"]
