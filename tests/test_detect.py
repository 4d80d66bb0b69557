"""Model family detection from key names and shapes, and refusal of bad files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from studio.engine.detect import classify, detect, is_diffusion_checkpoint
from studio.errors import ModelError
from studio.paths import MODEL_CONFIGS

REAL = {
    "sd1": ("sd1", False, "SD 1.x"),
    "sd1-inpaint": ("sd1", True, "SD 1.x inpainting"),
    "sd2": ("sd2", False, "SD 2.x"),
    "sd2-inpaint": ("sd2", True, "SD 2.x inpainting"),
    "sdxl": ("sdxl", False, "SDXL"),
    "sdxl-inpaint": ("sdxl", True, "SDXL inpainting"),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_size_layouts_are_recognised(name):
    from tests.tiny_models import original_key_shapes

    shapes = original_key_shapes(MODEL_CONFIGS / name)
    info = classify(shapes, {}, Path(f"{name}.safetensors"))
    family, inpaint, label = REAL[name]
    assert (info.family, info.inpaint, info.standard) == (family, inpaint, True)
    assert info.label == label
    assert info.config_name == name


def test_v_prediction_marker_selects_the_768_v_config():
    from tests.tiny_models import original_key_shapes

    shapes = original_key_shapes(MODEL_CONFIGS / "sd2-v")
    shapes["v_pred"] = ()
    info = classify(shapes, {}, Path("sd2-768.safetensors"))
    assert info.prediction == "v_prediction"
    assert info.config_name == "sd2-v"
    assert "v-prediction" in info.label


def test_sd2_v_is_told_from_norm_bias_spread_without_a_marker():
    from studio.engine.detect import SD2_V_PROBE
    from tests.tiny_models import original_key_shapes

    shapes = original_key_shapes(MODEL_CONFIGS / "sd2")
    wide = torch.randn(shapes[SD2_V_PROBE]) * 0.2
    narrow = torch.randn(shapes[SD2_V_PROBE]) * 0.01
    assert classify(shapes, {SD2_V_PROBE: wide}).prediction == "v_prediction"
    assert classify(shapes, {SD2_V_PROBE: narrow}).prediction == "epsilon"


def test_unknown_in_channels_and_refiner_are_named():
    from tests.tiny_models import original_key_shapes

    shapes = original_key_shapes(MODEL_CONFIGS / "sd1")
    key = "model.diffusion_model.input_blocks.0.0.weight"
    shapes[key] = (320, 8, 3, 3)
    with pytest.raises(ModelError, match="InstructPix2Pix"):
        classify(shapes, {}, Path("ip2p.safetensors"))


def test_tiny_single_files_are_detected(tiny_sd1, tiny_sd2v, tiny_sdxl, tiny_sd1_inpaint):
    assert detect(tiny_sd1.single_file).family == "sd1"
    info = detect(tiny_sd2v.single_file)
    assert (info.family, info.prediction) == ("sd2", "v_prediction")
    assert detect(tiny_sdxl.single_file).family == "sdxl"
    assert detect(tiny_sd1_inpaint.single_file).inpaint
    # Tiny models have non-standard widths: they need their own config to load.
    assert not detect(tiny_sd1.single_file).standard
    assert detect(tiny_sd1.pipe_folder).family == "sd1"
    assert detect(tiny_sdxl.pipe_folder).family == "sdxl"
    assert is_diffusion_checkpoint(tiny_sd1.single_file)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        detect(tmp_path / "nothing.safetensors")


def test_random_bytes_safetensors(tmp_path):
    bad = tmp_path / "random.safetensors"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(ModelError, match="random.safetensors"):
        detect(bad)


def test_truncated_safetensors(tmp_path, tiny_sd1):
    data = tiny_sd1.single_file.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.safetensors"):
        detect(cut)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(marker)}, evil)
    with pytest.raises(ModelError, match="Refused to load evil.ckpt"):
        detect(evil)
    assert not marker.exists()


def test_weights_only_ckpt_loads(tmp_path, tiny_sd1):
    from safetensors.torch import load_file

    state = load_file(tiny_sd1.single_file)
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": state, "global_step": 10}, ckpt)
    assert detect(ckpt).family == "sd1"


def test_unrecognised_architecture(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"encoder.layer.0.weight": torch.zeros(4, 4)}, other)
    with pytest.raises(ModelError, match="not a recognised Stable Diffusion checkpoint|VAE"):
        detect(other)
    lora = tmp_path / "style.safetensors"
    save_file({"lora_unet_down_blocks_0.lora_down.weight": torch.zeros(4, 4)}, lora)
    with pytest.raises(ModelError, match="LoRA"):
        detect(lora)


def test_not_a_model_suffix(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelError, match="not a model file"):
        detect(text)


def test_a_model_folder_may_recommend_a_cfg_scale(tmp_path):
    import json

    from studio.engine.recommended import recommended, recommended_cfg

    folder = tmp_path / "model"
    folder.mkdir()
    assert recommended(folder) == {} and recommended_cfg(folder) == 7.0
    assert recommended_cfg(tmp_path / "model.safetensors") == 7.0  # a single file: nothing
    (folder / "studio.json").write_text(json.dumps({"recommended": {"cfg_scale": 3}}))
    assert recommended(folder) == {"cfg_scale": 3.0}
    for bad in ({"cfg_scale": "3"}, {"cfg_scale": 99.0}, {"cfg_scale": True}, ["x"]):
        (folder / "studio.json").write_text(json.dumps({"recommended": bad}))
        assert recommended_cfg(folder) == 7.0, bad
    (folder / "studio.json").write_text("{not json")
    assert recommended_cfg(folder) == 7.0
