"""Generation on tiny models loaded from single files, through the default workflows: the path
the window, the CLI and `studio run` take (graph -> runtime worker -> executor -> nodes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from studio.engine.latents import decode_latents
from studio.engine.sampling import check_params
from studio.errors import Cancelled, ParameterError
from studio.formats.parameters import SAMPLERS, GenerationParams
from studio.runtime import Preview, Progress
from studio.runtime.one_call import WorkflowFailed, run_workflow
from studio.runtime.worker import Runtime

BASE = GenerationParams(prompt="a red circle", steps=4, width=64, height=64, seed=7, cfg_scale=5.0)
SAMPLE = {
    "positive.text": "a red circle",
    "sample.steps": 4,
    "sample.seed": 7,
    "sample.cfg_scale": 5.0,
}
SIZE = {"latent.width": 64, "latent.height": 64}


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture(scope="module")
def models():
    from studio.engine.checkpoint import ModelCache

    return ModelCache()


@pytest.fixture(scope="module")
def model(models, tiny_sd1, cpu):
    """The tiny SD1 model the workflows below load (the same object: one cache)."""
    return models.get(tiny_sd1.single_file, cpu, config=tiny_sd1.config_folder)


@pytest.fixture(scope="module")
def run(models, model, tiny_sd1, cpu):
    """Run a default workflow on the tiny SD1 model with SAMPLE values plus `values`."""

    def run(mode: str = "txt2img", values=None, *, checkpoint=tiny_sd1, **kwargs):
        filled = {
            "model.path": str(checkpoint.single_file),
            "model.config": str(checkpoint.config_folder),
            **SAMPLE,
            **(SIZE if mode == "txt2img" else {}),
            **(values or {}),
        }
        return run_workflow(mode, filled, device=cpu, models=models, **kwargs)

    return run


def test_text_to_image_is_reproducible_and_seeded(run, model):
    a, b = run(), run()
    c = run(values={"sample.seed": 8})
    image = a.images[0]
    assert image.size == (64, 64) and image.mode == "RGB"
    assert np.array_equal(pixels(image), pixels(b.images[0]))
    assert not np.array_equal(pixels(image), pixels(c.images[0]))
    assert a.params[0].seed == 7 and a.params[0].model == model.name


def test_batch_image_i_uses_seed_plus_i(run):
    batch = run(values={"latent.batch_size": 3, "sample.steps": 2})
    assert [p.seed for p in batch.params] == [7, 8, 9]
    third = run(values={"sample.seed": 9, "sample.steps": 2})
    assert np.array_equal(pixels(batch.images[2]), pixels(third.images[0]))


def test_progress_reports_every_step_with_a_small_preview(run):
    done = run(values={"sample.steps": 5, "latent.batch_size": 2})
    steps = [(e.step, e.total) for e in done.events if isinstance(e, Progress)]
    assert steps == [(i, 10) for i in range(1, 11)]
    previews = [e for e in done.events if isinstance(e, Preview)]
    assert len(previews) == 10
    assert previews[-1].image.dtype == np.uint8 and previews[-1].image.shape == (8, 8, 3)


def test_cancel_stops_within_one_step_and_engine_stays_ready(run, models, cpu):
    runtime = Runtime(device=cpu, models=models)
    seen = []

    def on_event(event):
        if isinstance(event, Progress):
            seen.append(event.step)
            if event.step == 2:
                runtime.cancel()

    try:
        with pytest.raises(Cancelled):
            run(values={"sample.steps": 20}, runtime=runtime, on_event=on_event)
        assert seen == [1, 2]
        again = run(runtime=runtime)
    finally:
        runtime.shutdown()
    assert np.array_equal(pixels(again.images[0]), pixels(run().images[0]))


def test_image_to_image_strength_sets_the_steps_run(run):
    init = Image.new("RGB", (64, 64), (200, 30, 30))
    out = run("img2img", {"sample.steps": 10, "sample.denoise": 0.5}, inputs={"image": init})
    totals = [e.total for e in out.events if isinstance(e, Progress)]
    assert totals[-1] == 5
    assert out.params[0].strength == 0.5 and out.images[0].size == (64, 64)


def _photo(size=(96, 80)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def _mask(size=(96, 80)) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((30, 20, 60, 50), fill=255)
    return mask


@pytest.mark.parametrize("masked_only", [False, True])
def test_inpaint_leaves_pixels_outside_the_mask_unchanged(run, masked_only):
    photo, mask = _photo(), _mask()
    values = {"sample.denoise": 1.0, "feather.pixels": 4, "crop.enabled": masked_only}
    out = run("inpaint", values, inputs={"image": photo, "mask": mask}).images[0]
    assert out.size == photo.size
    outside = np.ones((80, 96), bool)
    outside[20 - 5 : 50 + 6, 30 - 5 : 60 + 6] = False  # mask box plus the feather
    assert np.array_equal(pixels(out)[outside], pixels(photo)[outside])
    inside = pixels(out)[25:45, 35:55] != pixels(photo)[25:45, 35:55]
    assert inside.mean() > 0.9


def test_inpaint_with_a_nine_channel_model(run, models, tiny_sd1_inpaint, cpu):
    model = models.get(tiny_sd1_inpaint.single_file, cpu, config=tiny_sd1_inpaint.config_folder)
    assert model.info.inpaint and model.base.unet.config.in_channels == 9
    photo, mask = _photo(), _mask()
    out = run(
        "inpaint",
        {"sample.denoise": 1.0},
        checkpoint=tiny_sd1_inpaint,
        inputs={"image": photo, "mask": mask},
    )
    outside = np.asarray(mask) == 0
    outside[10:61, 20:71] = False
    assert np.array_equal(pixels(out.images[0])[outside], pixels(photo)[outside])
    # A 9-channel model also does text-to-image (through an all-white mask).
    txt = run(values={"sample.steps": 2}, checkpoint=tiny_sd1_inpaint)
    assert txt.images[0].size == (64, 64)


def test_inpaint_refuses_a_mask_of_another_size_or_an_empty_one(run):
    other_size = {"image": _photo(), "mask": Image.new("L", (64, 64), 255)}
    with pytest.raises(WorkflowFailed, match="96x80") as caught:
        run("inpaint", {"crop.enabled": True}, inputs=other_size)
    assert "64x64" in str(caught.value) and caught.value.node_id
    with pytest.raises(WorkflowFailed, match="The mask is empty"):
        run("inpaint", inputs={"image": _photo(), "mask": Image.new("L", (96, 80), 0)})
    with pytest.raises(WorkflowFailed, match="shrunk by 30 pixels"):
        run("inpaint", {"grow.pixels": -30}, inputs={"image": _photo(), "mask": _mask()})


def _count_unet_batches(model):
    batches = []
    unet = model.base.unet
    hook = unet.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    return batches, hook


def test_cfg_cutoff_drops_the_unconditional_half_after_the_fraction(run, model):
    batches, hook = _count_unet_batches(model)
    try:
        run(values={"sample.cfg_cutoff": 0.5})
    finally:
        hook.remove()
    assert batches == [2, 2, 1, 1]


def test_guidance_rescale_and_pag_change_the_image(run, model):
    plain = pixels(run().images[0])
    rescaled = pixels(run(values={"sample.guidance_rescale": 0.7}).images[0])
    processors = dict(model.base.unet.attn_processors)
    batches, hook = _count_unet_batches(model)
    try:
        pag = pixels(run(values={"sample.pag_scale": 3.0}).images[0])
    finally:
        hook.remove()
    assert batches[0] == 3  # unconditional, conditional and perturbed passes
    assert not np.array_equal(plain, rescaled)
    assert not np.array_equal(plain, pag)
    # PAG must hand the shared UNet back untouched.
    assert {k: type(v) for k, v in model.base.unet.attn_processors.items()} == {
        k: type(v) for k, v in processors.items()
    }
    assert np.array_equal(plain, pixels(run().images[0]))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_and_is_reproducible(run, sampler):
    values = {"sample.sampler": sampler, "sample.steps": 3}
    out, again = run(values=values), run(values=values)
    assert sum(isinstance(e, Progress) for e in out.events) >= 3
    assert any(isinstance(e, Preview) for e in out.events)
    assert np.array_equal(pixels(out.images[0]), pixels(again.images[0]))


def test_a_sampler_does_not_depend_on_the_one_used_before(run):
    ddim = {"sample.sampler": "DDIM", "sample.steps": 3}
    first = run(values=ddim)
    run(values={"sample.sampler": "Euler a", "sample.steps": 2})
    again = run(values=ddim)
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))


def test_samplers_without_zero_snr_support_refuse_such_a_model():
    from studio.engine.samplers import make_scheduler

    config = {"prediction_type": "v_prediction", "rescale_betas_zero_snr": True}
    assert make_scheduler("Euler a", config).config.timestep_spacing == "trailing"
    with pytest.raises(ParameterError, match="LMS sampler cannot run this model.*Euler a"):
        make_scheduler("LMS", config)


def test_task_pipelines_share_weights(model):
    img2img = model.pipeline("img2img")
    inpaint = model.pipeline("inpaint")
    assert img2img.unet is model.base.unet and inpaint.vae is model.base.vae
    assert img2img.text_encoder is model.base.text_encoder


def test_sd2_v_and_sdxl_generate(run, models, tiny_sd2v, tiny_sdxl, cpu):
    out = run(values={"sample.steps": 2, "sample.sampler": "DPM++ 2M Karras"}, checkpoint=tiny_sd2v)
    sd2 = models.get(tiny_sd2v.single_file, cpu, config=tiny_sd2v.config_folder)
    assert sd2.base.scheduler.config.prediction_type == "v_prediction"
    assert out.images[0].size == (64, 64) and out.params[0].model_family == "sd2-v"

    xl = models.get(tiny_sdxl.single_file, cpu, config=tiny_sdxl.config_folder)
    batches, hook = _count_unet_batches(xl)
    try:
        values = {"latent.height": 96, "sample.cfg_cutoff": 0.5}
        out = run(values=values, checkpoint=tiny_sdxl)
    finally:
        hook.remove()
    assert out.images[0].size == (64, 96) and batches == [2, 2, 1, 1]


def test_check_params_rounds_sizes_and_refuses_nonsense():
    params, notes = check_params(BASE.with_(width=500, height=300))
    assert (params.width, params.height) == (504, 304)
    assert "not a multiple of 8" in notes[0]
    for bad, pattern in [
        (BASE.with_(steps=0), "Steps must be at least 1"),
        (BASE.with_(width=100000), "too large"),
        (BASE.with_(width=40000, height=40000), "too large"),
        (BASE.with_(width=8), "too small"),
        (BASE.with_(sampler="Nope"), "Unknown sampler"),
        (BASE.with_(mode="img2img", strength=1.5), "Strength"),
        (BASE.with_(cfg_cutoff=0), "CFG cut-off"),
    ]:
        with pytest.raises(ParameterError, match=pattern):
            check_params(bad)
    assert check_params(BASE.with_(prompt=""))[0].prompt == ""


def test_fp16_vae_overflow_falls_back_to_fp32(model):
    import copy

    pipe = copy.copy(model.base)
    vae = copy.deepcopy(model.base.vae)
    with torch.no_grad():
        vae.post_quant_conv.weight.mul_(1e4)
        vae.post_quant_conv.bias.add_(1e5)
    pipe.vae = vae.to(torch.float16)
    latents = torch.randn(1, 4, 8, 8)
    image = decode_latents(pipe, latents)[0]
    assert vae.dtype == torch.float32
    assert image.size == (64, 64)


def test_model_cache_loads_once_and_evicts(tiny_sd1, tiny_sd2v, cpu):
    from studio.engine.checkpoint import ModelCache

    cache = ModelCache()
    a = cache.get(tiny_sd1.single_file, cpu, config=tiny_sd1.config_folder)
    b = cache.get(tiny_sd1.single_file, cpu, config=tiny_sd1.config_folder)
    assert a is b and cache.loads == 1
    small = ModelCache(budget_bytes=a.nbytes + 1)
    small.get(tiny_sd1.single_file, cpu, config=tiny_sd1.config_folder)
    small.get(tiny_sd2v.single_file, cpu, config=tiny_sd2v.config_folder)
    assert len(small) == 1 and small.loads == 2


def test_a_cpu_job_uses_every_core(models, tiny_sd1):
    from studio.engine.device import usable_cores

    values = {
        "model.path": str(tiny_sd1.single_file),
        "model.config": str(tiny_sd1.config_folder),
        **SAMPLE,
        **SIZE,
        "sample.steps": 1,
    }
    # torch's thread count belongs to the thread that runs the job: read it there.
    seen = []

    def on_event(event):
        if isinstance(event, Progress):
            seen.append(torch.get_num_threads())

    run_workflow("txt2img", values, device="cpu", models=models, on_event=on_event)
    assert seen == [usable_cores()]
    # The window may ask for fewer.
    seen.clear()
    runtime = Runtime(device="cpu", models=models, cpu_threads=1)
    try:
        run_workflow("txt2img", {**values, "sample.seed": 8}, runtime=runtime, on_event=on_event)
    finally:
        runtime.shutdown()
    assert seen == [1]
