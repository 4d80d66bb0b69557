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


@pytest.fixture(scope="module")
def run(tiny_sd1, cpu):
    from studio.engine.checkpoint import ModelCache
    from studio.runtime.one_call import run_workflow

    models = ModelCache()

    def run(tiling: str):
        values = {
            "model.path": str(tiny_sd1.single_file),
            "model.config": str(tiny_sd1.config_folder),
            "positive.text": "a red circle",
            "sample.steps": 2,
            "latent.width": 128,
            "latent.height": 128,
            "decode.tiling": tiling,
        }
        return run_workflow("txt2img", values, device=cpu, models=models)

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
