"""Super-resolution: spandrel models run in blended tiles, the diffusion x4 upscaler, Lanczos."""

from __future__ import annotations

import logging
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from spandrel import (
    MAIN_REGISTRY,
    ImageModelDescriptor,
    MaskedImageModelDescriptor,
    ModelTiling,
    UnsupportedModelError,
    canonicalize_state_dict,
)

from studio.engine.progress import CancelToken, ProgressCallback, Step
from studio.errors import Cancelled, ImageError, ModelError, OutOfMemoryError, ParameterError

log = logging.getLogger(__name__)

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
MIN_TILE = 16


@dataclass(frozen=True, eq=False)
class UpscaleModel:
    """A loaded single-image super-resolution model, ready on its device."""

    name: str
    architecture: str  # spandrel's architecture id, e.g. "ESRGAN", "Compact", "SwinIR"
    scale: int
    descriptor: ImageModelDescriptor[Any]
    path: Path | None = None

    @property
    def device(self) -> torch.device:
        return self.descriptor.device

    @property
    def dtype(self) -> torch.dtype:
        return self.descriptor.dtype

    @property
    def nbytes(self) -> int:
        """Weight memory, so caches can budget for the model."""
        return sum(p.numel() * p.element_size() for p in self.descriptor.model.parameters())


# ---------------------------------------------------------------------------------------------
# Loading


def load_upscale_model(
    path: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> UpscaleModel:
    """Load an upscale model file (.safetensors, or a weights-only pickle) through spandrel."""
    path = Path(path)
    state_dict = _read_state_dict(path)
    try:
        descriptor = MAIN_REGISTRY.load(canonicalize_state_dict(state_dict))
    except UnsupportedModelError:
        raise ModelError(
            f"'{path.name}' is not a recognised upscale model (unknown architecture)."
        ) from None
    except Exception as exc:  # an architecture matched but its weights do not fit it
        log.debug("spandrel failed on %s", path, exc_info=True)
        raise ModelError(
            f"'{path.name}' looks like an upscale model but its weights could not be loaded: {exc}"
        ) from exc

    arch_id = str(descriptor.architecture.id)
    if isinstance(descriptor, MaskedImageModelDescriptor):
        raise ModelError(
            f"'{path.name}' is an inpainting model ({arch_id}) that needs a mask, "
            "not an upscale model."
        )
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.purpose == "FaceSR":
        raise ModelError(
            f"'{path.name}' is a {arch_id} face-restoration model, not an image upscale model."
        )
    if descriptor.input_channels not in (1, 3) or descriptor.output_channels not in (1, 3):
        raise ModelError(
            f"'{path.name}' expects {descriptor.input_channels}-channel images and makes "
            f"{descriptor.output_channels}-channel ones; only grey or RGB models are supported."
        )

    target = _pick_device(device)
    target_dtype = _pick_dtype(descriptor, target, dtype)
    descriptor.to(target, target_dtype)
    descriptor.eval()
    log.info(
        "Loaded upscale model %s (%s, x%d) on %s %s",
        path.name,
        arch_id,
        descriptor.scale,
        target,
        target_dtype,
    )
    return UpscaleModel(
        name=path.stem,
        architecture=arch_id,
        scale=int(descriptor.scale),
        descriptor=descriptor,
        path=path,
    )


def _read_state_dict(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ModelError(f"Upscale model file not found: '{path}'.")
    if not path.is_file():
        raise ModelError(f"'{path.name}' is not a file.")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path), device="cpu")
        except Exception as exc:
            raise ModelError(
                f"'{path.name}' is not a readable safetensors file (corrupt or incomplete)."
            ) from exc
    elif suffix in PICKLE_SUFFIXES:
        state = _read_pickle(path)
    else:
        raise ModelError(
            f"'{path.name}' has an unsupported extension; use .safetensors, .pth, .pt or .ckpt."
        )
    if not isinstance(state, dict) or not state:
        raise ModelError(f"'{path.name}' does not contain model weights.")
    return state


def _read_pickle(path: Path) -> Any:
    # spandrel 0.4.2 unpickles with its own allow-list (not weights_only=True) and hands .pt files
    # to torch.jit.load first, so pickles never reach it: we read them with torch's weights-only
    # unpickler, which refuses anything but tensors and plain containers.
    from studio.formats.weights import check_pickle_weights

    check_pickle_weights(path)  # declared sizes first: torch allocates whatever they say
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower():
            raise ModelError(
                f"'{path.name}' contains code or objects other than weights and was refused "
                "for safety; use a .safetensors version of this model."
            ) from exc
        raise ModelError(f"'{path.name}' is corrupt or not a PyTorch weights file.") from exc
    except RuntimeError as exc:
        if "torchscript" in str(exc).lower():
            raise ModelError(
                f"'{path.name}' is a TorchScript program, not a weights file; "
                "use a .safetensors or .pth version of this model."
            ) from exc
        raise ModelError(f"'{path.name}' is corrupt or incomplete.") from exc
    except Exception as exc:  # EOFError, KeyError, BadZipFile... from a damaged file
        raise ModelError(f"'{path.name}' is corrupt or incomplete.") from exc


def _pick_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"Unknown device '{device}'.") from exc


def _pick_dtype(
    descriptor: ImageModelDescriptor[Any], device: torch.device, dtype: torch.dtype | None
) -> torch.dtype:
    arch = descriptor.architecture.id
    if dtype is None:
        half_ok = device.type == "cuda" and descriptor.supports_half
        return torch.float16 if half_ok else torch.float32
    if dtype == torch.float16 and not (device.type == "cuda" and descriptor.supports_half):
        log.info("fp16 is not used for %s on %s; running in fp32", arch, device)
        return torch.float32
    if dtype == torch.bfloat16 and not descriptor.supports_bfloat16:
        log.info("%s does not support bf16; running in fp32", arch)
        return torch.float32
    return dtype


# ---------------------------------------------------------------------------------------------
# Tiling: tiles overlap by `overlap` input pixels; in each overlap the outer quarter next to a
# tile's inner edge gets weight 0 (those pixels saw the artificial tile border) and the middle
# half blends with a cosine ramp. For a model whose receptive field is within overlap/4 the
# result is identical to running the whole image at once.


def _validate_tiling(tile: int, overlap: int) -> None:
    if tile < MIN_TILE:
        raise ParameterError(f"Tile size must be at least {MIN_TILE} pixels (got {tile}).")
    if overlap < 0:
        raise ParameterError(f"Tile overlap cannot be negative (got {overlap}).")
    if overlap * 2 >= tile:
        raise ParameterError(
            f"Tile overlap ({overlap}) must be less than half the tile size ({tile})."
        )


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Start/end of the tiles along one axis; the last tile is pulled back to end at the edge."""
    if length <= tile:
        return [(0, length)]
    stride = tile - overlap
    count = math.ceil((length - overlap) / stride)
    spans = []
    for i in range(count):
        start = min(i * stride, length - tile)
        spans.append((start, start + tile))
    return spans


def _ramp(span: tuple[int, int], length: int, overlap: int, scale: int) -> torch.Tensor:
    """Blend weight along one axis of a tile, in output pixels."""
    start, end = span
    n = (end - start) * scale
    weight = torch.ones(n, dtype=torch.float64)
    width = overlap * scale
    if width == 0:
        return weight.float()
    margin = width // 4
    ramp_len = max(width - 2 * margin, 1)
    d = torch.arange(n, dtype=torch.float64) + 0.5
    rise = ((d - margin) / ramp_len).clamp(0.0, 1.0)
    rise = 0.5 - 0.5 * torch.cos(math.pi * rise)
    if start > 0:
        weight = weight * rise
    if end < length:
        weight = weight * rise.flip(0)
    return weight.float()


class _Blender:
    """Accumulates weighted tile outputs on the CPU (memory: one float image at output size)."""

    def __init__(self, width: int, height: int, overlap: int, scale: int, channels: int = 3):
        self.width, self.height, self.overlap, self.scale = width, height, overlap, scale
        self.acc = torch.zeros(channels, height * scale, width * scale, dtype=torch.float32)
        self.wx = torch.zeros(width * scale, dtype=torch.float32)
        self.wy = torch.zeros(height * scale, dtype=torch.float32)

    def grid(self, tile_w: int, tile_h: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """The tiles as (row span, column span) pairs, row by row."""
        xs = _spans(self.width, tile_w, self.overlap)
        ys = _spans(self.height, tile_h, self.overlap)
        # Weights are separable over a row x column grid, so their sum is too.
        for span in xs:
            self.wx[span[0] * self.scale : span[1] * self.scale] += self._ramp(span, self.width)
        for span in ys:
            self.wy[span[0] * self.scale : span[1] * self.scale] += self._ramp(span, self.height)
        return [(row, col) for row in ys for col in xs]

    def _ramp(self, span: tuple[int, int], length: int) -> torch.Tensor:
        return _ramp(span, length, self.overlap, self.scale)

    def add(self, ys: tuple[int, int], xs: tuple[int, int], tile_out: torch.Tensor) -> None:
        s = self.scale
        weight = self._ramp(ys, self.height)[:, None] * self._ramp(xs, self.width)[None, :]
        self.acc[:, ys[0] * s : ys[1] * s, xs[0] * s : xs[1] * s] += tile_out * weight

    def result(self) -> np.ndarray:
        total = self.wy[:, None] * self.wx[None, :]
        out = (self.acc / total).clamp_(0.0, 1.0).mul_(255.0).add_(0.5).floor_()
        return out.to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def _split_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    if image.width < 1 or image.height < 1:
        raise ImageError("The image to upscale is empty.")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")
    if image.mode != "RGB":
        return image.convert("RGB"), None
    return image, None


def _merge_alpha(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    if alpha is None:
        return rgb
    rgb.putalpha(alpha.resize(rgb.size, Image.Resampling.LANCZOS))
    return rgb


def upscale_tiled(
    model: UpscaleModel,
    image: Image.Image,
    *,
    tile: int = 512,
    overlap: int = 32,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Image.Image:
    """Upscale `image` by model.scale in overlapping, smoothly blended tiles."""
    _validate_tiling(tile, overlap)
    rgb, alpha = _split_alpha(image)
    desc = model.descriptor
    scale = model.scale
    width, height = rgb.size

    if desc.tiling == ModelTiling.INTERNAL:
        # spandrel says this model needs the whole picture and tiles by itself.
        tile = max(width, height)
    req = desc.size_requirements
    if req.multiple_of > 1 and tile >= req.multiple_of:
        tile -= tile % req.multiple_of  # avoid padding every tile
    tile_w = min(tile, width)
    tile_h = min(tile, height)
    tile_overlap = min(overlap, max(0, (min(tile_w, tile_h) - 1) // 2))

    pixels = np.array(rgb.convert("L") if desc.input_channels == 1 else rgb)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    blender = _Blender(width, height, tile_overlap, scale)
    tiles = blender.grid(tile_w, tile_h)
    total = len(tiles)
    log.debug("Upscaling %dx%d x%d in %d tiles of %d", width, height, scale, total, tile)

    with torch.inference_mode():
        for index, (ys, xs) in enumerate(tiles, start=1):
            if cancel is not None:
                cancel.raise_if_cancelled()
            part = np.ascontiguousarray(pixels[ys[0] : ys[1], xs[0] : xs[1]])
            x = torch.from_numpy(part).permute(2, 0, 1)[None]
            x = x.to(device=desc.device).to(desc.dtype).div_(255.0)
            try:
                y = desc(x)[0].float().cpu()
            except torch.OutOfMemoryError:
                raise OutOfMemoryError(
                    f"Out of memory upscaling with '{model.name}' in {tile}-pixel tiles; "
                    "try a smaller tile size."
                ) from None
            if y.shape[0] == 1:
                y = y.expand(3, -1, -1)
            expected = ((ys[1] - ys[0]) * scale, (xs[1] - xs[0]) * scale)
            if tuple(y.shape[1:]) != expected:
                raise ModelError(
                    f"'{model.name}' produced a {y.shape[2]}x{y.shape[1]} tile where "
                    f"{expected[1]}x{expected[0]} was expected; its scale is not {scale}."
                )
            blender.add(ys, xs, y)
            if progress is not None:
                progress(Step(step=index, total=total))

    return _merge_alpha(Image.fromarray(blender.result()), alpha)


# ---------------------------------------------------------------------------------------------
# Lanczos


def lanczos_resize(
    image: Image.Image,
    factor: float | None = None,
    size: tuple[int, int] | None = None,
) -> Image.Image:
    """Resize with Lanczos filtering by `factor` or to `size` (width, height); always available."""
    if (factor is None) == (size is None):
        raise ParameterError("Give either a resize factor or a target size, not both or neither.")
    if image.width < 1 or image.height < 1:
        raise ImageError("The image to resize is empty.")
    if factor is not None:
        if not math.isfinite(factor) or factor <= 0:
            raise ParameterError(f"Resize factor must be a positive number (got {factor}).")
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    assert size is not None
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise ParameterError(f"Target size must be at least 1x1 pixels (got {width}x{height}).")
    if image.mode not in ("RGB", "RGBA", "L", "LA", "I", "F"):
        has_alpha = image.mode in ("PA",) or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    return image.resize((width, height), Image.Resampling.LANCZOS)


# ---------------------------------------------------------------------------------------------
# Diffusion x4 upscaler


def upscale_with_diffusion(
    pipe: Any,
    image: Image.Image,
    *,
    prompt: str = "",
    negative_prompt: str = "",
    steps: int = 20,
    guidance_scale: float = 7.5,
    noise_level: int = 20,
    seed: int = 0,
    tile: int | None = None,
    overlap: int = 32,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Image.Image:
    """Upscale with a loaded StableDiffusionUpscalePipeline (x4), optionally in tiles."""
    if steps < 1:
        raise ParameterError(f"Steps must be at least 1 (got {steps}).")
    max_noise = int(getattr(pipe.config, "max_noise_level", 350))
    if not 0 <= noise_level <= max_noise:
        raise ParameterError(f"Noise level must be between 0 and {max_noise} (got {noise_level}).")
    if not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise ParameterError(f"Guidance scale must be 0 or more (got {guidance_scale}).")
    rgb, alpha = _split_alpha(image)
    width, height = rgb.size
    if tile is None:
        tile_w, tile_h, overlap = width, height, 0
    else:
        _validate_tiling(tile, overlap)
        tile_w, tile_h = min(tile, width), min(tile, height)
        overlap = min(overlap, max(0, (min(tile_w, tile_h) - 1) // 2))

    scale = int(getattr(pipe, "vae_scale_factor", 4))
    pixels = np.asarray(rgb)
    blender = _Blender(width, height, overlap, scale)
    tiles = blender.grid(tile_w, tile_h)
    total = steps * len(tiles)

    for index, (ys, xs) in enumerate(tiles):
        if cancel is not None:
            cancel.raise_if_cancelled()
        part = pixels[ys[0] : ys[1], xs[0] : xs[1]]
        done_before = index * steps

        def on_step(
            step_index: int, _timestep: Any, _latents: torch.Tensor, done_before: int = done_before
        ) -> None:
            if progress is not None:
                progress(Step(step=done_before + min(step_index + 1, steps), total=total))
            if cancel is not None and cancel.cancelled:
                raise Cancelled()

        out = _diffuse_tile(
            pipe,
            part,
            scale,
            prompt=prompt,
            negative_prompt=negative_prompt,
            steps=steps,
            guidance_scale=guidance_scale,
            noise_level=noise_level,
            # Each tile gets its own noise; the same seed always gives the same tiles.
            seed=seed + index,
            callback=on_step,
        )
        blender.add(ys, xs, out)

    return _merge_alpha(Image.fromarray(blender.result()), alpha)


def _diffuse_tile(
    pipe: Any,
    part: np.ndarray,
    scale: int,
    *,
    prompt: str,
    negative_prompt: str,
    steps: int,
    guidance_scale: float,
    noise_level: int,
    seed: int,
    callback: Any,
) -> torch.Tensor:
    """One pipeline run; returns the tile as a (3, h*scale, w*scale) float tensor in [0, 1]."""
    h, w = part.shape[:2]
    # The pipeline silently crops its input down to a multiple of the VAE factor: pad instead
    # (edge pixels repeated) and cut the padding off the result.
    pad_h, pad_w = (-h) % scale, (-w) % scale
    if pad_h or pad_w:
        part = np.pad(part, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    # A CPU generator makes the noise the same on every device.
    generator = torch.Generator("cpu").manual_seed(int(seed))
    try:
        result = pipe(
            prompt=prompt,
            image=Image.fromarray(part),
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            noise_level=noise_level,
            negative_prompt=negative_prompt if guidance_scale > 1.0 else None,
            generator=generator,
            output_type="np",
            return_dict=False,
            callback=callback,
            callback_steps=1,
        )
    except BaseException as exc:
        # Raising from the callback skips the pipeline's own cleanup of offload hooks.
        pipe.maybe_free_model_hooks()
        if isinstance(exc, torch.OutOfMemoryError):
            raise OutOfMemoryError(
                f"Out of memory in the diffusion upscaler on a {w}x{h} tile; "
                "try a smaller tile size."
            ) from None
        raise
    array = np.asarray(result[0][0], dtype=np.float32)[: h * scale, : w * scale]
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
