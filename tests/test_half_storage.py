"""Exact fp16 weights stay fp16 between uses (studio.engine.half_storage): same pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.engine import half_storage
from studio.engine.checkpoint import ModelCache, module_bytes
from studio.runtime.one_call import run_workflow

VALUES = {
    "positive.text": "a red circle",
    "negative.text": "blurry",
    "sample.steps": 2,
    "sample.seed": 7,
    "latent.width": 64,
    "latent.height": 64,
}


@pytest.fixture(scope="module")
def fp16_file(tiny_sd1, tmp_path_factory):
    """The tiny SD1 single file stored in fp16, as most checkpoints are."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_sd1.single_file))
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    path = tmp_path_factory.mktemp("half") / "tiny-fp16.safetensors"
    save_file(half, str(path))
    return path


def _generate(path, config, monkeypatch=None):
    models = ModelCache()
    result = run_workflow(
        "txt2img",
        {"model.path": str(path), "model.config": str(config), **VALUES},
        device="cpu",
        models=models,
    )
    (loaded,) = models._models.values()
    return np.asarray(result.images[0]), loaded


def test_an_fp16_file_keeps_its_text_encoder_and_vae_weights_in_fp16_with_the_same_pixels(
    fp16_file, tiny_sd1, monkeypatch
):
    halved, loaded = _generate(fp16_file, tiny_sd1.config_folder)
    pipe = loaded.base
    linears = [m for m in pipe.text_encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.float16 for m in linears)
    convs = [m for m in pipe.vae.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.weight.dtype == torch.float16 for m in convs)
    assert all(p.dtype == torch.float32 for p in pipe.unet.parameters())  # runs every step
    assert pipe.text_encoder.dtype == torch.float32  # what the pipeline casts prompts to

    monkeypatch.setattr("studio.engine.checkpoint.store_in_half", lambda pipe, dtype: 0)
    whole, reference = _generate(fp16_file, tiny_sd1.config_folder)
    assert np.array_equal(halved, whole)  # the widened weights are the fp32 weights
    assert module_bytes(pipe) < module_bytes(reference.base)


def test_weights_fp16_cannot_hold_are_left_in_fp32(tiny_sd1):
    # The tiny model's own file holds fp32 random weights, most of them not fp16 values.
    _, loaded = _generate(tiny_sd1.single_file, tiny_sd1.config_folder)
    assert all(p.dtype == torch.float32 for p in loaded.base.text_encoder.parameters())
    assert not half_storage.exactly_half(loaded.base.vae)


def test_only_fp32_runs_are_halved():
    layer = torch.nn.Sequential(torch.nn.Linear(4, 4).half().float())
    assert half_storage.exactly_half(layer)
    assert half_storage.store_in_half(type("P", (), {"vae": layer})(), torch.float16) == 0
    assert half_storage.store_in_half(type("P", (), {"vae": layer})(), torch.float32) > 0
    assert layer[0].weight.dtype == torch.float16  # between uses
    assert layer(torch.ones(1, 4)).dtype == torch.float32  # widened while it runs
    assert layer[0].weight.dtype == torch.float16


def test_a_lora_on_the_halved_text_encoder_gives_the_same_pixels(
    fp16_file, tiny_sd1, tmp_path, monkeypatch
):
    import dataclasses

    from studio.engine.device import choose_device
    from studio.nodes.model_addons import LoraChoice
    from tests.test_model_addons import pixels
    from tests.tiny_addons import write_lora
    from tests.tiny_models import build_tiny_pipeline

    tiny = dataclasses.replace(tiny_sd1, single_file=fp16_file)
    lora = write_lora(build_tiny_pipeline("sd1"), tmp_path / "l.safetensors", "kohya")
    cpu = choose_device("cpu")
    loras = [LoraChoice(str(lora), 1.0)]
    shared = ModelCache()  # the LoRA goes on and comes off the same halved model
    halved = pixels(tiny, cpu, shared, tmp_path, loras=loras)
    after = pixels(tiny, cpu, shared, tmp_path)
    monkeypatch.setattr("studio.engine.checkpoint.store_in_half", lambda pipe, dtype: 0)
    assert np.array_equal(halved, pixels(tiny, cpu, ModelCache(), tmp_path, loras=loras))
    assert np.array_equal(after, pixels(tiny, cpu, ModelCache(), tmp_path))
    assert not np.array_equal(halved, after)
