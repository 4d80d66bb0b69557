"""Memory modes chosen by size: a picture too big to decode whole is decoded in tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.engine import memory


def test_tiling_is_chosen_from_the_size_and_the_free_memory(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(memory, "free_bytes", lambda device: 16 * 1024**3)
    assert not memory.should_tile_vae(1024, 1024, torch.float32, cpu)
    # 8 MP needs no setting: it is tiled on a 16 GB machine, in fp16 too.
    assert memory.should_tile_vae(3840, 2160, torch.float32, cpu)
    assert memory.should_tile_vae(3840, 2160, torch.float16, cpu)
    assert memory.should_tile_vae(64, 64, torch.float32, cpu, "on")
    assert not memory.should_tile_vae(3840, 2160, torch.float32, cpu, "off")


def _txt2img(tiny_sd1, cpu, models, values, **options):
    """The default text-to-image workflow on the tiny SD1 model at 128x128, plus `values`."""
    from studio.runtime.one_call import run_workflow

    base = {
        "model.path": str(tiny_sd1.single_file),
        "model.config": str(tiny_sd1.config_folder),
        "positive.text": "a red circle",
        "latent.width": 128,
        "latent.height": 128,
    }
    return run_workflow("txt2img", {**base, **values}, device=cpu, models=models, **options)


@pytest.fixture(scope="module")
def run(tiny_sd1, cpu):
    from studio.engine.checkpoint import ModelCache

    models = ModelCache()

    def run(tiling: str):
        values = {"sample.steps": 2, "decode.tiling": tiling}
        return _txt2img(tiny_sd1, cpu, models, values)

    return run


def test_a_forced_tiled_decode_says_so_and_leaves_the_shared_vae_as_it_was(run):
    whole, tiled = run("off"), run("on")
    assert tiled.images[0].size == whole.images[0].size == (128, 128)
    assert tiled.params[0].extra.get("vae") == "tiled"
    assert "vae" not in whole.params[0].extra
    difference = np.abs(
        np.asarray(tiled.images[0], dtype=np.int16) - np.asarray(whole.images[0], dtype=np.int16)
    )
    assert difference.max() > 0  # the tiles were really decoded apart
    again = run("off")
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(whole.images[0]))


# -- memory modes for sampling ------------------------------------------------------------------

GB = 10**9


def choose(device: str, free_gb: float, side: int, **kwargs):
    from studio.engine.memory_modes import choose_memory_mode

    weights = kwargs.pop("weights", int(2 * GB))
    return choose_memory_mode(
        device, int(free_gb * GB), weights, side, side, 1, torch.float16, **kwargs
    )


def test_the_memory_mode_is_chosen_from_the_free_memory_the_size_and_the_attention():
    # CPU: nothing is offloaded; slicing only where the attention is a whole matrix.
    assert choose("cpu", 16, 512).mode == "none"
    assert choose("cpu", 16, 512).message == ""
    sliced = choose("cpu", 16, 2048, fused_attention=False)
    assert sliced.mode == "attention slicing"
    assert sliced.message.startswith("Using attention slicing: sampling 2048x2048 would need about")
    assert sliced.message.endswith("16.0 GB free.")
    # Fused attention never holds the matrix: slicing would not help, so it is not chosen.
    tight = choose("cpu", 0.5, 2048)
    assert tight.mode == "none" and "may not fit" in tight.message
    assert choose("cpu", 0.5, 2048, fused_attention=False).mode == "attention slicing"
    # CUDA: from slicing (matrix attention) to the offloads as the memory shrinks.
    assert choose("cuda", 24, 1024).mode == "none"
    assert choose("cuda", 8, 1024, fused_attention=False).mode == "attention slicing"
    # 2048x2048 fp16 needs about 3.5 GB of activations: 4.5 GB free fits them, 4.2 GB only once
    # the text encoders and the VAE have left the GPU, 1 GB not even then.
    assert choose("cuda", 4.5, 2048).mode == "none"
    assert choose("cuda", 4.2, 2048).mode == "model offload"
    assert choose("cuda", 1, 2048).mode == "sequential offload"
    assert choose("cuda", 1, 2048, can_offload=False).mode == "none"
    assert choose("cuda", 1, 2048, fused_attention=False, can_offload=False).mode == (
        "attention slicing"
    )


def test_a_forced_memory_mode_is_used_or_explained_in_one_sentence():
    assert choose("cpu", 16, 512, choice="none").mode == "none"
    forced = choose("cpu", 16, 512, choice="attention slicing")
    assert forced.mode == "attention slicing" and "chosen in the settings" in forced.message
    assert choose("cuda", 80, 512, choice="sequential offload").mode == "sequential offload"
    for mode in ("model offload", "sequential offload"):
        refused = choose("cpu", 16, 512, choice=mode)
        assert refused.mode == "none"
        assert refused.message == (
            f"{mode.capitalize()} needs a CUDA GPU; this job runs on the CPU without it."
        )
    missing = choose("cuda", 16, 512, choice="model offload", can_offload=False)
    assert missing.mode == "attention slicing" and "accelerate package" in missing.message
    unknown = choose("cpu", 16, 512, choice="turbo")
    assert unknown.mode == "none" and "turbo" in unknown.message


def test_the_memory_mode_setting_is_checked_like_the_others(tmp_path, caplog):
    import json

    from studio import settings as settings_module
    from studio.engine.memory_modes import CHOICES
    from studio.settings import MEMORY_MODES, Settings

    assert MEMORY_MODES == CHOICES
    path = tmp_path / "settings.json"
    assert Settings.load(path).memory_mode == "auto"
    path.write_text(json.dumps({"memory_mode": "model offload"}), encoding="utf-8")
    assert Settings.load(path).memory_mode == "model offload"
    settings_module._warned.clear()
    for bad in ("turbo", 3, None):
        path.write_text(json.dumps({"memory_mode": bad, "device": "cpu"}), encoding="utf-8")
        with caplog.at_level("WARNING", logger="studio.settings"):
            loaded = Settings.load(path)
        assert (loaded.memory_mode, loaded.device) == ("auto", "cpu")
    warnings = [r.getMessage() for r in caplog.records if "memory_mode" in r.getMessage()]
    assert len(warnings) == 3 and all('using "auto" instead' in w for w in warnings), warnings


@pytest.fixture(scope="module")
def sample(tiny_sd1, cpu):
    """Runs the default text-to-image workflow with a memory mode; keeps the loaded model."""
    from studio.engine.checkpoint import ModelCache

    models = ModelCache()

    def sample(mode: str):
        values = {"sample.steps": 3, "sample.seed": 7}
        return _txt2img(tiny_sd1, cpu, models, values, memory_mode=mode)

    sample.models = models
    return sample


def _notices(result) -> list[str]:
    from studio.runtime.events import Notice

    return [e.message for e in result.events if isinstance(e, Notice)]


def _processors(models) -> list[str]:
    (model,) = models._models.values()
    return sorted({type(p).__name__ for p in model.base.unet.attn_processors.values()})


def test_a_job_forced_to_slice_attention_says_so_and_the_next_job_does_not_slice(sample):
    plain = sample("none")
    fused = _processors(sample.models)
    assert fused == ["AttnProcessor2_0"]
    assert _notices(plain) == [] and "memory" not in plain.params[0].extra
    sliced = sample("attention slicing")
    assert sliced.params[0].extra["memory"] == "attention slicing"
    (notice,) = _notices(sliced)
    assert notice.startswith("Using attention slicing (chosen in the settings): sampling 128x128")
    # Sliced attention sums the same softmax in another order: float rounding only (measured
    # on the tiny model: at most 1 level of 255, in under 0.01 % of the values, 128 and 256 px).
    a = np.asarray(plain.images[0], dtype=np.int16)
    b = np.asarray(sliced.images[0], dtype=np.int16)
    assert np.abs(a - b).max() <= 2
    # The A1111 parameters text carries it.
    from studio.formats.a1111 import to_a1111

    assert "memory: attention slicing" in to_a1111(sliced.params[0])
    # The shared model is as it was: the next job runs fused attention and says nothing.
    assert _processors(sample.models) == fused
    again = sample("auto")
    assert _notices(again) == [] and "memory" not in again.params[0].extra
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(plain.images[0]))


@pytest.mark.parametrize("mode", ["model offload", "sequential offload"])
def test_a_forced_offload_on_the_cpu_is_explained_and_the_job_still_runs(sample, mode):
    result = sample(mode)
    assert _notices(result) == [
        f"{mode.capitalize()} needs a CUDA GPU; this job runs on the CPU without it."
    ]
    assert result.images[0].size == (128, 128)
    assert "memory" not in result.params[0].extra
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(sample("none").images[0]))


@pytest.mark.parametrize("mode", ["model offload", "sequential offload"])
def test_an_offload_is_undone_after_the_job(sd1_model, cpu, mode):
    """The offload code path (accelerate's hooks) with the CPU as its execution device: no hook
    and no weight on the meta device is left on the shared model after it.

    Sequential offload does not run a forward pass here: diffusers names the execution device
    "cpu:0", and accelerate then fails to put a layer's weights back on the meta device (a CPU
    artefact; on CUDA the device is "cuda:0" anyway). Undoing it is what is checked.
    """
    from studio.engine.memory_modes import memory_mode

    pipe = sd1_model.pipeline("txt2img")
    unet = pipe.unet
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    context = torch.randn(2, 77, unet.config.cross_attention_dim)
    with torch.inference_mode():
        before = unet(x, 10, encoder_hidden_states=context).sample
        with memory_mode(pipe, mode, cpu.device):
            assert any(hasattr(m, "_hf_hook") for m in unet.modules())
            if mode == "model offload":
                during = unet(x, 10, encoder_hidden_states=context).sample
                assert torch.equal(before, during)
        after = unet(x, 10, encoder_hidden_states=context).sample
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            assert not any(hasattr(m, "_hf_hook") for m in module.modules())
            assert {p.device.type for p in module.parameters()} == {"cpu"}
    assert torch.equal(before, after)
    assert "_offload_device" not in pipe.__dict__ and not pipe._all_hooks
