"""Generation on tiny models loaded from single files: the same path a user's checkpoint takes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from studio.engine.generate import check_params, generate
from studio.engine.latents import decode_latents
from studio.engine.progress import CancelToken
from studio.errors import Cancelled, ImageError, ParameterError
from studio.formats.parameters import SAMPLERS, GenerationParams

BASE = GenerationParams(prompt="a red circle", steps=4, width=64, height=64, seed=7, cfg_scale=5.0)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_text_to_image_is_reproducible_and_seeded(sd1_model):
    a = generate(sd1_model, BASE)[0]
    b = generate(sd1_model, BASE)[0]
    c = generate(sd1_model, BASE.with_(seed=8))[0]
    assert a.image.size == (64, 64) and a.image.mode == "RGB"
    assert np.array_equal(pixels(a.image), pixels(b.image))
    assert not np.array_equal(pixels(a.image), pixels(c.image))
    assert a.params.seed == 7 and a.params.model == sd1_model.name


def test_batch_image_i_uses_seed_plus_i(sd1_model):
    batch = generate(sd1_model, BASE.with_(batch_size=3, steps=2))
    assert [r.params.seed for r in batch] == [7, 8, 9]
    third = generate(sd1_model, BASE.with_(seed=9, steps=2))[0]
    assert np.array_equal(pixels(batch[2].image), pixels(third.image))


def test_progress_reports_every_step_with_a_small_preview(sd1_model):
    steps = []
    generate(sd1_model, BASE.with_(steps=5, batch_size=2), progress=steps.append)
    assert [(s.step, s.total) for s in steps] == [(i, 10) for i in range(1, 11)]
    preview = steps[-1].preview
    assert preview.dtype == np.uint8 and preview.shape == (8, 8, 3)


def test_cancel_stops_within_one_step_and_engine_stays_ready(sd1_model):
    token = CancelToken()
    seen = []

    def on_step(step):
        seen.append(step.step)
        if step.step == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        generate(sd1_model, BASE.with_(steps=20), progress=on_step, cancel=token)
    assert seen == [1, 2]
    token.reset()
    again = generate(sd1_model, BASE, cancel=token)[0]
    fresh = generate(sd1_model, BASE)[0]
    assert np.array_equal(pixels(again.image), pixels(fresh.image))


def test_image_to_image_strength_sets_the_steps_run(sd1_model):
    init = Image.new("RGB", (64, 64), (200, 30, 30))
    steps = []
    out = generate(
        sd1_model,
        BASE.with_(mode="img2img", steps=10, strength=0.5),
        init_image=init,
        progress=steps.append,
    )[0]
    assert steps[-1].total == 5
    assert out.params.strength == 0.5 and out.image.size == (64, 64)


def _photo(size=(96, 80)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def _mask(size=(96, 80)) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((30, 20, 60, 50), fill=255)
    return mask


@pytest.mark.parametrize("masked_only", [False, True])
def test_inpaint_leaves_pixels_outside_the_mask_unchanged(sd1_model, masked_only):
    photo, mask = _photo(), _mask()
    params = BASE.with_(mode="inpaint", strength=1.0, mask_feather=4, masked_only=masked_only)
    out = generate(sd1_model, params, init_image=photo, mask=mask)[0].image
    assert out.size == photo.size
    outside = np.ones((80, 96), bool)
    outside[20 - 5 : 50 + 6, 30 - 5 : 60 + 6] = False  # mask box plus the feather
    assert np.array_equal(pixels(out)[outside], pixels(photo)[outside])
    inside = pixels(out)[25:45, 35:55] != pixels(photo)[25:45, 35:55]
    assert inside.mean() > 0.9


def test_inpaint_with_a_nine_channel_model(tiny_sd1_inpaint, cpu):
    from studio.engine.checkpoint import load_model

    model = load_model(tiny_sd1_inpaint.single_file, cpu, config=tiny_sd1_inpaint.config_folder)
    assert model.info.inpaint and model.base.unet.config.in_channels == 9
    photo, mask = _photo(), _mask()
    out = generate(model, BASE.with_(mode="inpaint", strength=1.0), init_image=photo, mask=mask)[0]
    outside = np.asarray(mask) == 0
    outside[10:61, 20:71] = False
    assert np.array_equal(pixels(out.image)[outside], pixels(photo)[outside])
    # A 9-channel model also does text-to-image (through an all-white mask).
    assert generate(model, BASE.with_(steps=2))[0].image.size == (64, 64)


def test_inpaint_needs_a_mask_of_the_same_size(sd1_model):
    with pytest.raises(ImageError, match="96x80"):
        generate(
            sd1_model,
            BASE.with_(mode="inpaint"),
            init_image=_photo(),
            mask=Image.new("L", (64, 64), 255),
        )


def _count_unet_batches(model):
    batches = []
    unet = model.base.unet
    hook = unet.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    return batches, hook


def test_cfg_cutoff_drops_the_unconditional_half_after_the_fraction(sd1_model):
    batches, hook = _count_unet_batches(sd1_model)
    try:
        generate(sd1_model, BASE.with_(steps=4, cfg_cutoff=0.5))
    finally:
        hook.remove()
    assert batches == [2, 2, 1, 1]


def test_guidance_rescale_and_pag_change_the_image(sd1_model):
    plain = pixels(generate(sd1_model, BASE)[0].image)
    rescaled = pixels(generate(sd1_model, BASE.with_(guidance_rescale=0.7))[0].image)
    processors = dict(sd1_model.base.unet.attn_processors)
    batches, hook = _count_unet_batches(sd1_model)
    try:
        pag = pixels(generate(sd1_model, BASE.with_(pag_scale=3.0))[0].image)
    finally:
        hook.remove()
    assert batches[0] == 3  # unconditional, conditional and perturbed passes
    assert not np.array_equal(plain, rescaled)
    assert not np.array_equal(plain, pag)
    # PAG must hand the shared UNet back untouched.
    assert {k: type(v) for k, v in sd1_model.base.unet.attn_processors.items()} == {
        k: type(v) for k, v in processors.items()
    }
    assert np.array_equal(plain, pixels(generate(sd1_model, BASE)[0].image))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_and_is_reproducible(sd1_model, sampler):
    steps = []
    params = BASE.with_(sampler=sampler, steps=3)
    out = generate(sd1_model, params, progress=steps.append)[0]
    again = generate(sd1_model, params)[0]
    assert len(steps) >= 3
    assert steps[-1].preview is not None
    assert np.array_equal(pixels(out.image), pixels(again.image))


def test_a_sampler_does_not_depend_on_the_one_used_before(sd1_model):
    ddim = BASE.with_(sampler="DDIM", steps=3)
    first = generate(sd1_model, ddim)[0]
    generate(sd1_model, BASE.with_(sampler="Euler a", steps=2))
    again = generate(sd1_model, ddim)[0]
    assert np.array_equal(pixels(first.image), pixels(again.image))


def test_samplers_without_zero_snr_support_refuse_such_a_model():
    from studio.engine.samplers import make_scheduler

    config = {"prediction_type": "v_prediction", "rescale_betas_zero_snr": True}
    assert make_scheduler("Euler a", config).config.timestep_spacing == "trailing"
    with pytest.raises(ParameterError, match="LMS sampler cannot run this model.*Euler a"):
        make_scheduler("LMS", config)


def test_task_pipelines_share_weights(sd1_model):
    img2img = sd1_model.pipeline("img2img")
    inpaint = sd1_model.pipeline("inpaint")
    assert img2img.unet is sd1_model.base.unet and inpaint.vae is sd1_model.base.vae
    assert img2img.text_encoder is sd1_model.base.text_encoder


def test_sd2_v_and_sdxl_generate(tiny_sd2v, tiny_sdxl, cpu):
    from studio.engine.checkpoint import load_model

    sd2 = load_model(tiny_sd2v.single_file, cpu, config=tiny_sd2v.config_folder)
    assert sd2.base.scheduler.config.prediction_type == "v_prediction"
    out = generate(sd2, BASE.with_(steps=2, sampler="DPM++ 2M Karras"))[0]
    assert out.image.size == (64, 64) and out.params.model_family == "sd2-v"

    xl = load_model(tiny_sdxl.single_file, cpu, config=tiny_sdxl.config_folder)
    batches, hook = _count_unet_batches(xl)
    try:
        out = generate(xl, BASE.with_(steps=4, width=64, height=96, cfg_cutoff=0.5))[0]
    finally:
        hook.remove()
    assert out.image.size == (64, 96) and batches == [2, 2, 1, 1]


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


def test_fp16_vae_overflow_falls_back_to_fp32(sd1_model):
    import copy

    pipe = copy.copy(sd1_model.base)
    vae = copy.deepcopy(sd1_model.base.vae)
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
