"""Super-resolution: spandrel loading (safely), blended tiles, Lanczos and the diffusion x4."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import studio.engine.upscale as upscale
from studio.engine.progress import CancelToken, Step
from studio.engine.upscale import (
    UpscaleModel,
    lanczos_resize,
    load_upscale_model,
    upscale_tiled,
    upscale_with_diffusion,
)
from studio.errors import Cancelled, ModelError, ParameterError

TOKENIZER_DIR = Path(__file__).resolve().parents[1] / "resources" / "tokenizers" / "clip"


# ---------------------------------------------------------------------------------------------
# Tiny random-weight models built from spandrel's own architecture classes


def _compact_state_dict(scale: int = 2) -> dict[str, torch.Tensor]:
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=1, upscale=scale)
    with torch.no_grad():
        # Keep the residual small so outputs stay inside [0, 1] and differences stay visible.
        net.body[-1].weight.mul_(0.1)
        net.body[-1].bias.zero_()
    return {k: v.contiguous() for k, v in net.state_dict().items()}


def _esrgan_state_dict() -> dict[str, torch.Tensor]:
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4)
    return {k: v.contiguous() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("upscale_models")
    save_file(_compact_state_dict(), str(folder / "tiny-compact-2x.safetensors"))
    torch.save(_compact_state_dict(), folder / "tiny-compact-2x.pth")
    torch.save({"params_ema": _esrgan_state_dict()}, folder / "tiny-esrgan-4x.pth")
    return folder


@pytest.fixture(scope="module")
def compact(model_dir: Path) -> UpscaleModel:
    return load_upscale_model(model_dir / "tiny-compact-2x.safetensors", device="cpu")


def _image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], axis=-1) * 200
    noisy = base + rng.normal(0, 20, size=base.shape)
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8), "RGB")


def _diff(a: Image.Image, b: Image.Image) -> int:
    return int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())


# ---------------------------------------------------------------------------------------------
# Loading


def test_loads_safetensors_and_pth_with_detected_architecture(model_dir: Path) -> None:
    from_st = load_upscale_model(model_dir / "tiny-compact-2x.safetensors", device="cpu")
    from_pth = load_upscale_model(model_dir / "tiny-compact-2x.pth", device="cpu")
    esrgan = load_upscale_model(model_dir / "tiny-esrgan-4x.pth", device="cpu")

    assert (from_st.architecture, from_st.scale, from_st.name) == ("Compact", 2, "tiny-compact-2x")
    assert (from_pth.architecture, from_pth.scale) == ("Compact", 2)
    assert (esrgan.architecture, esrgan.scale) == ("ESRGAN", 4)
    assert from_st.device.type == "cpu" and from_st.dtype == torch.float32

    image = _image(12, 10)
    assert upscale_tiled(esrgan, image).size == (48, 40)
    assert _diff(upscale_tiled(from_st, image), upscale_tiled(from_pth, image)) == 0


def test_half_precision_is_not_used_on_cpu(model_dir: Path) -> None:
    model = load_upscale_model(
        model_dir / "tiny-compact-2x.safetensors", device="cpu", dtype=torch.float16
    )
    assert model.dtype == torch.float32


class _Payload:
    """Unpickling this creates (opens for writing) the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, writer: str) -> None:
    # Prove the payload is live: a plain unpickle does create its marker.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe))).close()
    assert probe.exists()

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil-4x.pth"
    payload = {"model.0.weight": torch.zeros(1), "hook": _Payload(marker)}
    if writer == "torch.save":
        torch.save(payload, evil)
    else:
        with open(evil, "wb") as f:
            pickle.dump(payload, f, protocol=2)

    with pytest.raises(ModelError, match="evil-4x.pth") as info:
        load_upscale_model(evil, device="cpu")
    assert not marker.exists()
    if writer == "torch.save":
        assert "safety" in str(info.value)


def test_corrupt_files_give_clear_errors(tmp_path: Path, model_dir: Path) -> None:
    rng = np.random.default_rng(1)
    cases: dict[str, bytes] = {
        "noise.safetensors": rng.bytes(4096),
        "noise.pth": rng.bytes(4096),
        "empty.pt": b"",
        "half.safetensors": (model_dir / "tiny-compact-2x.safetensors").read_bytes()[:3000],
        "half.pth": (model_dir / "tiny-esrgan-4x.pth").read_bytes()[:3000],
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ModelError, match=name.replace(".", r"\.")):
            load_upscale_model(path, device="cpu")


def test_missing_file_and_wrong_extension(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found.*nowhere.safetensors"):
        load_upscale_model(tmp_path / "nowhere.safetensors")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(ModelError, match=r"model\.onnx.*unsupported extension"):
        load_upscale_model(onnx)


def test_unknown_architecture(tmp_path: Path) -> None:
    path = tmp_path / "mystery.safetensors"
    save_file({"encoder.layer.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(ModelError, match="'mystery.safetensors' is not a recognised upscale model"):
        load_upscale_model(path)


def test_model_that_needs_a_mask_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spandrel import Architecture, ArchSupport, MaskedImageModelDescriptor

    class TinyInpaint(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tiny_inpaint = torch.nn.Conv2d(4, 3, 1)

    class TinyInpaintArch(Architecture[TinyInpaint]):
        def __init__(self) -> None:
            super().__init__(id="TinyInpaint", detect=lambda sd: "tiny_inpaint.weight" in sd)

        def load(self, state_dict):  # type: ignore[override]
            return MaskedImageModelDescriptor(
                TinyInpaint(),
                state_dict,
                architecture=self,
                purpose="Inpainting",
                tags=[],
                supports_half=False,
                supports_bfloat16=False,
                input_channels=3,
                output_channels=3,
            )

    registry = upscale.MAIN_REGISTRY.copy()
    registry.add(ArchSupport.from_architecture(TinyInpaintArch()))
    monkeypatch.setattr(upscale, "MAIN_REGISTRY", registry)
    path = tmp_path / "inpaint.safetensors"
    save_file(TinyInpaint().state_dict(), str(path))
    with pytest.raises(ModelError, match="'inpaint.safetensors' is an inpainting model.*mask"):
        load_upscale_model(path, device="cpu")


# ---------------------------------------------------------------------------------------------
# Tiles


def test_tiled_output_equals_whole_image_output(compact: UpscaleModel) -> None:
    image = _image(90, 70)
    steps: list[Step] = []
    tiled = upscale_tiled(compact, image, tile=40, overlap=16, progress=steps.append)
    whole = upscale_tiled(compact, image, tile=512)

    # The same model run directly on the whole image, quantised the same way.
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255
    direct = (compact.descriptor(x)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)

    assert tiled.size == whole.size == (180, 140)
    assert _diff(whole, Image.fromarray(direct)) == 0
    # Compact with one body conv sees 3 pixels around; overlap/4 = 4, so tiles are exact
    # up to float rounding: no seams anywhere, borders included.
    assert _diff(tiled, whole) <= 1
    assert np.asarray(tiled).std() > 20  # a real picture, not a clamped flat image

    # 90 wide: columns start at 0,24,48,50; 70 high: rows start at 0,24,30 -> 12 tiles.
    assert [s.step for s in steps] == list(range(1, 13))
    assert {s.total for s in steps} == {12}


def test_image_smaller_than_a_tile_is_one_tile(compact: UpscaleModel) -> None:
    steps: list[Step] = []
    out = upscale_tiled(compact, _image(20, 12), progress=steps.append)
    assert out.size == (40, 24) and out.mode == "RGB"
    assert steps == [Step(step=1, total=1)]


def test_rgba_keeps_its_alpha(compact: UpscaleModel) -> None:
    image = _image(20, 16).convert("RGBA")
    image.putalpha(128)
    out = upscale_tiled(compact, image, tile=16, overlap=4)
    assert out.mode == "RGBA" and out.size == (40, 32)
    assert np.asarray(out)[..., 3].min() == 128


def test_cancel_between_tiles_then_run_again(compact: UpscaleModel) -> None:
    image = _image(64, 48)
    token = CancelToken()
    seen: list[int] = []

    def on_step(step: Step) -> None:
        seen.append(step.step)
        if step.step == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        upscale_tiled(compact, image, tile=32, overlap=8, progress=on_step, cancel=token)
    assert seen == [1, 2]

    token.reset()
    again = upscale_tiled(compact, image, tile=32, overlap=8, cancel=token)
    assert _diff(again, upscale_tiled(compact, image, tile=512)) <= 1


@pytest.mark.parametrize(("tile", "overlap"), [(32, 16), (32, 20), (8, 2), (64, -1)])
def test_bad_tiling_parameters(compact: UpscaleModel, tile: int, overlap: int) -> None:
    with pytest.raises(ParameterError):
        upscale_tiled(compact, _image(40, 40), tile=tile, overlap=overlap)


# ---------------------------------------------------------------------------------------------
# Lanczos


def test_lanczos_resize_by_factor_and_size() -> None:
    image = _image(10, 8)
    assert lanczos_resize(image, factor=2.5).size == (25, 20)
    assert lanczos_resize(image, size=(33, 21)).size == (33, 21)
    assert lanczos_resize(image.convert("P"), factor=2).mode == "RGB"
    with pytest.raises(ParameterError):
        lanczos_resize(image)
    with pytest.raises(ParameterError):
        lanczos_resize(image, factor=2, size=(4, 4))
    with pytest.raises(ParameterError):
        lanczos_resize(image, factor=0)


# ---------------------------------------------------------------------------------------------
# Diffusion x4 upscaler, built tiny from configs


@pytest.fixture(scope="module")
def x4_pipe():
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        DDPMScheduler,
        StableDiffusionUpscalePipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=7,  # 4 latent channels + the noised low-res RGB image
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=4,
        num_class_embeds=1000,  # the noise level is fed as a class label
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 8, 8),  # three blocks: the decoder upsamples x4
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        scaling_factor=0.08333,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
        )
    )
    tokenizer = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))
    pipe = StableDiffusionUpscalePipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        low_res_scheduler=DDPMScheduler(num_train_timesteps=1000),
        scheduler=DDIMScheduler(
            num_train_timesteps=1000,
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            prediction_type="v_prediction",
        ),
        max_noise_level=350,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_diffusion_x4_size_and_every_step_reported(x4_pipe) -> None:
    image = _image(18, 14)  # not a multiple of the VAE factor: padded, not cropped
    steps: list[Step] = []
    out = upscale_with_diffusion(
        x4_pipe, image, prompt="a cat", steps=3, seed=7, progress=steps.append
    )
    assert out.size == (72, 56) and out.mode == "RGB"
    assert [(s.step, s.total) for s in steps] == [(1, 3), (2, 3), (3, 3)]


def test_diffusion_cancel_then_reuse_with_same_pixels_for_same_seed(x4_pipe) -> None:
    image = _image(16, 16)
    token = CancelToken()
    seen: list[int] = []

    def on_step(step: Step) -> None:
        seen.append(step.step)
        if step.step == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        upscale_with_diffusion(x4_pipe, image, steps=3, seed=1, progress=on_step, cancel=token)
    assert seen == [1, 2]

    token.reset()
    first = upscale_with_diffusion(x4_pipe, image, steps=3, seed=1, cancel=token)
    second = upscale_with_diffusion(x4_pipe, image, steps=3, seed=1)
    assert first.size == (64, 64) and _diff(first, second) == 0


def test_diffusion_in_tiles(x4_pipe) -> None:
    steps: list[Step] = []
    out = upscale_with_diffusion(
        x4_pipe,
        _image(28, 16),
        steps=2,
        guidance_scale=1.0,
        tile=16,
        overlap=4,
        progress=steps.append,
    )
    assert out.size == (112, 64)
    # 28 wide -> columns at 0 and 12; 16 high -> one row: 2 tiles x 2 steps.
    assert [s.step for s in steps] == [1, 2, 3, 4]
    assert {s.total for s in steps} == {4}


def test_diffusion_rejects_bad_parameters(x4_pipe) -> None:
    with pytest.raises(ParameterError, match="Noise level"):
        upscale_with_diffusion(x4_pipe, _image(16, 16), noise_level=351)
    with pytest.raises(ParameterError, match="Steps"):
        upscale_with_diffusion(x4_pipe, _image(16, 16), steps=0)


def test_offline_environment_is_set() -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
