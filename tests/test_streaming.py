"""Single-file checkpoints streamed into the model give exactly diffusers' own weights."""

from __future__ import annotations

import pytest
import torch

from studio.engine.configs import load_tokenizers
from studio.engine.detect import detect
from studio.errors import ModelError


def _both(tiny, dtype):
    from studio.engine.checkpoint import pipeline_class
    from studio.engine.single_file import can_stream, load_streamed

    info = detect(tiny.single_file)
    assert can_stream(info)
    cls = pipeline_class(info, "inpaint" if info.inpaint else "txt2img")
    extra = dict(load_tokenizers(tiny.config_folder))
    if info.family != "sdxl":
        extra.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    streamed = load_streamed(info, tiny.config_folder, cls, dtype, torch.device("cpu"), extra)
    reference = cls.from_single_file(
        str(tiny.single_file),
        config=str(tiny.config_folder),
        local_files_only=True,
        torch_dtype=dtype,
        **extra,
    )
    return streamed, reference


@pytest.mark.parametrize(
    ("family", "dtype"),
    [
        ("sd1", torch.float32),
        ("sd1", torch.bfloat16),
        ("sd2v", torch.float32),
        ("sdxl", torch.float32),
    ],
)
def test_streamed_weights_equal_diffusers_single_file_loading(
    family, dtype, tiny_sd1, tiny_sd2v, tiny_sdxl
):
    tiny = {"sd1": tiny_sd1, "sd2v": tiny_sd2v, "sdxl": tiny_sdxl}[family]
    streamed, reference = _both(tiny, dtype)
    names = ["unet", "vae", "text_encoder"] + (["text_encoder_2"] if family == "sdxl" else [])
    for name in names:
        got, want = getattr(streamed, name).state_dict(), getattr(reference, name).state_dict()
        assert got.keys() == want.keys(), name
        for key, value in want.items():
            assert got[key].dtype == value.dtype, (name, key)
            assert torch.equal(got[key], value), (name, key)
    assert type(streamed.scheduler) is type(reference.scheduler)
    assert streamed.scheduler.config == reference.scheduler.config


def test_a_truncated_file_is_refused_with_a_sentence(tiny_sd1, cpu, tmp_path):
    from studio.engine.checkpoint import load_model

    data = tiny_sd1.single_file.read_bytes()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ModelError, match="broken.safetensors"):
        load_model(broken, cpu, config=tiny_sd1.config_folder)


def test_a_file_that_does_not_fit_its_config_names_both(tiny_sd1, cpu):
    from studio.engine.checkpoint import load_model
    from studio.engine.configs import bundled_config

    with pytest.raises(ModelError, match=r"sd1.safetensors does not fit the configuration in sd1"):
        load_model(tiny_sd1.single_file, cpu, config=bundled_config("sd1"))


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_diffusers_folder_streams_the_same_weights_as_from_pretrained(
    family, dtype, tiny_sd1, tiny_sdxl, tmp_path
):
    """A diffusers folder (single and sharded weight files, and an older text encoder whose
    names carry `text_model.`) loads the exact weights diffusers' from_pretrained gives."""
    import shutil

    from diffusers import DiffusionPipeline
    from safetensors.torch import load_file, save_file

    from studio.engine.folder_loading import stream_folder_components

    tiny = {"sd1": tiny_sd1, "sdxl": tiny_sdxl}[family]
    folder = shutil.copytree(tiny.pipe_folder, tmp_path / "model")
    # The UNet as two shards with an index; the text encoder with the old `text_model.` names.
    unet = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    names = sorted(unet)
    halves = {"a.safetensors": names[::2], "b.safetensors": names[1::2]}
    for shard, keys in halves.items():
        save_file({k: unet[k] for k in keys}, folder / "unet" / shard)
    weight_map = {k: shard for shard, keys in halves.items() for k in keys}
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    index = folder / "unet" / "diffusion_pytorch_model.safetensors.index.json"
    index.write_text(__import__("json").dumps({"metadata": {}, "weight_map": weight_map}))
    encoder_file = folder / "text_encoder" / "model.safetensors"
    encoder = load_file(encoder_file)
    save_file({f"text_model.{k}": v for k, v in encoder.items()}, encoder_file)

    streamed = stream_folder_components(folder, dtype, torch.device("cpu"))
    reference = DiffusionPipeline.from_pretrained(
        tiny.pipe_folder, torch_dtype=dtype, local_files_only=True
    )
    expected = ["text_encoder", "unet", "vae"] + (["text_encoder_2"] if family == "sdxl" else [])
    assert sorted(streamed) == sorted(expected)
    for name, model in streamed.items():
        got, want = model.state_dict(), getattr(reference, name).state_dict()
        assert got.keys() == want.keys(), name
        for key, value in want.items():
            assert got[key].dtype == value.dtype and torch.equal(got[key], value), (name, key)


def test_a_diffusers_folder_loads_through_load_model_with_streamed_weights(tiny_sd1, cpu):
    from studio.engine.checkpoint import load_model

    model = load_model(tiny_sd1.pipe_folder, cpu)
    assert not any(p.is_meta for p in model.base.unet.parameters())
    assert model.base.unet.dtype == cpu.dtype


def test_the_reader_maps_each_tensor_exactly_and_refuses_what_the_file_lacks(tmp_path):
    import json
    import struct

    from safetensors.torch import save_file

    from studio.engine.streaming import SafetensorsReader

    # Offsets that are not multiples of the page size, several dtypes, an empty tensor.
    tensors = {
        "a": torch.arange(7, dtype=torch.float16),
        "b": torch.randn(33, 65, dtype=torch.float32),
        "c": torch.tensor([1, -2, 3], dtype=torch.int64),
        "e": torch.zeros(0, 4),
    }
    path = tmp_path / "t.safetensors"
    save_file(tensors, str(path))
    reader = SafetensorsReader(path)
    for key, expected in tensors.items():
        got = reader.read(key)
        assert got.dtype == expected.dtype and torch.equal(got, expected)
    got = reader.read("b")
    got.add_(1)  # a private map: writing never reaches the file
    reader.close()
    assert torch.equal(SafetensorsReader(path).read("b"), tensors["b"])

    # A header whose byte count disagrees with the shape, and one past the end of the file.
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    for change, needle in (((0, 6), "wrong number of bytes"), ((0, 10**6), "ends early")):
        header["a"]["data_offsets"] = list(change)
        if needle == "ends early":
            header["a"]["shape"] = [10**6 // 2]
        raw = json.dumps(header).encode()
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + length :])
        with pytest.raises(ModelError, match=needle):
            SafetensorsReader(bad).read("a")
