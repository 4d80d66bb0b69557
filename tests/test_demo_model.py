"""The bundled default model: it ships, loads like a user's checkpoint, and draws what it is told."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.demo.analyse import analyse
from studio.demo.scenes import COLORS, Scene, caption_labels, draw, shape_box
from studio.paths import DEMO_CHECKPOINT, DEMO_UPSCALER

pytestmark = pytest.mark.skipif(
    not DEMO_CHECKPOINT.is_dir(), reason="the bundled model is not in resources/models"
)


@pytest.fixture(scope="module")
def models():
    from studio.engine.checkpoint import ModelCache

    return ModelCache()


@pytest.fixture(scope="module")
def generate(models, cpu):
    """Run a default workflow on the bundled model, as the window and CLI do."""
    from studio.runtime.one_call import run_workflow

    def generate(mode: str, values: dict, inputs: dict | None = None) -> list[Image.Image]:
        filled = {"model.path": str(DEMO_CHECKPOINT), **values}
        return run_workflow(mode, filled, inputs=inputs, device=cpu, models=models).images

    return generate


def test_it_ships_small_and_is_detected_as_sd1():
    from studio.engine.detect import detect
    from studio.engine.sizes import native_size

    files = [p for p in DEMO_CHECKPOINT.rglob("*") if p.is_file()] + [DEMO_UPSCALER]
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    info = detect(DEMO_CHECKPOINT)
    assert (info.family, info.layout, info.inpaint) == ("sd1", "diffusers", False)
    assert native_size(DEMO_CHECKPOINT) == 64


def _matches(image: Image.Image, scene: Scene, prompt: str) -> bool:
    """The image shows `scene` (its position only if the prompt names one)."""
    found = analyse(image)
    named = caption_labels(scene, prompt)["position"] is not None
    return (found.background, found.color, found.shape) == (
        scene.background,
        scene.color,
        scene.shape,
    ) and (not named or found.position == scene.position)


@pytest.fixture(scope="module")
def cfg():
    """The CFG scale the model recommends (its studio.json): what the CLI and window use."""
    from studio.engine.recommended import recommended_cfg

    return recommended_cfg(DEMO_CHECKPOINT)


@pytest.mark.parametrize(
    ("prompt", "scene"),
    [
        ("a red circle on a blue background", Scene("circle", "red", "blue")),
        (
            "a large pink diamond on the right on a green background",
            Scene("diamond", "pink", "green", size="large", position="right"),
        ),
        (
            "a small white triangle in the top left, black background",
            Scene("triangle", "white", "black", size="small", position="top left"),
        ),
        (
            "orange background with a purple square at the bottom",
            Scene("square", "purple", "orange", position="bottom"),
        ),
    ],
)
def test_text_to_image_draws_the_prompt(generate, cfg, prompt, scene):
    values = {"positive.text": prompt, "sample.steps": 20, "sample.cfg_scale": cfg}
    values.update({"sample.seed": 7, "latent.width": 64, "latent.height": 64})
    images = generate("txt2img", {**values, "latent.batch_size": 3})
    # Seeds differ in the details; most of them must get everything the prompt names right.
    hits = sum(_matches(image, scene, prompt) for image in images)
    assert hits >= 2, [analyse(i) for i in images]


def test_image_to_image_at_low_strength_keeps_the_scene(generate, cfg):
    scene = Scene("diamond", "orange", "purple", size="large", position="right")
    prompt = "a large orange diamond on the right on a purple background"
    values = {"positive.text": prompt, "sample.steps": 20, "sample.cfg_scale": cfg}
    values.update({"sample.seed": 3, "sample.denoise": 0.35})
    result = generate("img2img", values, {"image": draw(scene)})[0]
    assert result.size == (64, 64)
    assert _matches(result, scene, prompt), analyse(result)


def test_inpainting_repaints_the_mask_and_keeps_the_rest(generate, cfg):
    original = draw(Scene("circle", "red", "blue", size="large", position="left"))
    new = Scene("triangle", "yellow", "blue", size="large", position="right")
    cx, cy, r = shape_box(new, 64)
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((cx - r - 4, cy - r - 4, cx + r + 4, cy + r + 4), fill=255)
    prompt = "a large yellow triangle on the right on a blue background"
    values = {"positive.text": prompt, "sample.steps": 20, "sample.cfg_scale": cfg}
    values.update({"sample.denoise": 1.0, "feather.pixels": 0})
    # Seeds 2, 3 and 4, as a batch of three would use.
    results = [
        generate("inpaint", {**values, "sample.seed": seed}, {"image": original, "mask": mask})[0]
        for seed in (2, 3, 4)
    ]
    outside = np.asarray(mask) == 0
    for result in results:
        assert np.array_equal(np.asarray(result)[outside], np.asarray(original)[outside])
        assert not np.array_equal(np.asarray(result)[~outside], np.asarray(original)[~outside])
    # The masked region, alone on the background, follows the prompt in most seeds.
    blue = np.broadcast_to(np.array(COLORS["blue"], np.uint8), (64, 64, 3))
    alone = [np.where(outside[..., None], blue, np.asarray(r)) for r in results]
    found = [analyse(image) for image in alone]
    assert (
        sum((f.color, f.shape, f.position) == ("yellow", "triangle", "right") for f in found) >= 2
    ), found


def test_the_upscaler_beats_bicubic_on_an_unseen_scene():
    import random

    from studio.demo.train import upscaler_pair
    from studio.engine.upscale import load_upscale_model, upscale_tiled

    model = load_upscale_model(DEMO_UPSCALER, device="cpu")
    low, high = upscaler_pair(random.Random(31337))
    target = np.asarray(high, dtype=np.float64)

    def psnr(image: Image.Image) -> float:
        return 10 * np.log10(
            255.0**2 / ((np.asarray(image, dtype=np.float64) - target) ** 2).mean()
        )

    ours = psnr(upscale_tiled(model, low))
    bicubic = psnr(low.resize(high.size, Image.Resampling.BICUBIC))
    assert ours >= bicubic + 2.0, (ours, bicubic)


def test_the_readme_command_generates_with_the_bundled_model(tmp_path, capsys):
    from studio.cli import main
    from studio.formats.metadata import read_metadata

    out = tmp_path / "out.png"
    assert (
        main(["generate", "a red circle on a blue background", "--seed", "1", "-o", str(out)]) == 0
    )
    image = Image.open(out)
    assert image.size == (64, 64)
    meta = read_metadata(out)
    assert meta is not None and "studio-shapes" in meta.params.model
    assert meta.params.cfg_scale == 3.0  # the model's recommendation, with no --cfg given


def test_upscale_without_a_model_uses_the_bundled_x4(tmp_path):
    from studio.cli import main
    from studio.formats.metadata import read_metadata

    source = tmp_path / "small.png"
    draw(Scene("triangle", "green", "white")).save(source)
    out = tmp_path / "big.png"
    assert main(["upscale", str(source), "-o", str(out)]) == 0
    assert Image.open(out).size == (256, 256)
    meta = read_metadata(out)
    assert meta is not None and meta.params.upscaler == DEMO_UPSCALER.name
