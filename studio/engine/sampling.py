"""Denoising a latent with a loaded checkpoint: the primitive behind the graph's Sample node."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch
from PIL import Image

from studio.engine.checkpoint import LoadedModel
from studio.engine.device import free_device_memory, trim_heap
from studio.engine.latents import Conditioning, Latent, empty_negative
from studio.engine.memory_modes import memory_mode
from studio.engine.pipeline_state import PipelineState
from studio.engine.preview import PreviewMaker, latent_rgb_for
from studio.engine.progress import CancelToken, ProgressCallback
from studio.engine.samplers import make_scheduler, sampler_by_name
from studio.engine.step_callback import DenoisedTap, StepCallback
from studio.errors import Cancelled, ImageError, OutOfMemoryError, ParameterError
from studio.formats.parameters import MODES, GenerationParams, round_to_8

log = logging.getLogger(__name__)

MIN_SIDE = 64
MAX_SIDE = 8192
MAX_PIXELS = 4096 * 4096
MAX_STEPS = 1000
MAX_BATCH = 100


def check_params(params: GenerationParams) -> tuple[GenerationParams, list[str]]:
    """Validate ranges; round sizes to multiples of 8. Returns the params to use and notes for the user."""
    notes: list[str] = []
    if params.mode not in MODES or params.mode == "upscale":
        raise ParameterError(f"Unknown generation mode '{params.mode}'.")
    if params.steps < 1:
        raise ParameterError(f"Steps must be at least 1 (got {params.steps}).")
    if params.steps > MAX_STEPS:
        raise ParameterError(f"Steps must be at most {MAX_STEPS} (got {params.steps}).")
    if not 1 <= params.batch_size <= MAX_BATCH:
        raise ParameterError(
            f"Batch count must be between 1 and {MAX_BATCH} (got {params.batch_size})."
        )
    if not 0 <= params.cfg_scale <= 100:
        raise ParameterError(f"CFG scale must be between 0 and 100 (got {params.cfg_scale}).")
    if not 0 <= params.guidance_rescale <= 1:
        raise ParameterError(
            f"Guidance rescale must be between 0 and 1 (got {params.guidance_rescale})."
        )
    if not 0 < params.cfg_cutoff <= 1:
        raise ParameterError(
            f"CFG cut-off must be above 0 and at most 1 (got {params.cfg_cutoff})."
        )
    if not 0 <= params.pag_scale <= 20:
        raise ParameterError(f"PAG scale must be between 0 and 20 (got {params.pag_scale}).")
    if params.mode in ("img2img", "inpaint"):
        # Inpainting usually replaces the masked content; image-to-image usually keeps its layout.
        default = 1.0 if params.mode == "inpaint" else 0.75
        strength = default if params.strength is None else params.strength
        if not 0 < strength <= 1:
            raise ParameterError(f"Strength must be above 0 and at most 1 (got {strength}).")
        params = params.with_(strength=strength)
    sampler_by_name(params.sampler)
    if params.seed < 0 or params.seed >= 2**64:
        raise ParameterError(f"Seed must be between 0 and 2^64-1 (got {params.seed}).")

    width, height = params.width, params.height
    if width < 1 or height < 1:
        raise ParameterError(f"Size {width}x{height} is not a valid image size.")
    w8, h8 = round_to_8(width), round_to_8(height)
    if (w8, h8) != (width, height):
        notes.append(f"Size {width}x{height} is not a multiple of 8: using {w8}x{h8}.")
        params = params.with_(width=w8, height=h8)
    if w8 < MIN_SIDE or h8 < MIN_SIDE:
        raise ParameterError(
            f"Size {width}x{height} is too small: each side must be at least {MIN_SIDE}."
        )
    if w8 > MAX_SIDE or h8 > MAX_SIDE or w8 * h8 > MAX_PIXELS:
        raise ParameterError(
            f"Size {width}x{height} is too large: at most {MAX_SIDE} pixels a side and "
            f"{MAX_PIXELS // 1_000_000} megapixels."
        )
    return params, notes


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


@contextlib.contextmanager
def out_of_memory_as_error(model: LoadedModel, width: int, height: int):
    """Turn the device running out of memory into a sentence, and give the memory back."""
    try:
        yield
    except Exception as exc:
        if _is_oom(exc):
            free_device_memory(model.choice.device)
            raise OutOfMemoryError(
                f"The {model.choice.device.type.upper()} ran out of memory at "
                f"{width}x{height}: try a smaller size or batch."
            ) from None
        raise


@dataclass(frozen=True)
class _Task:
    """Which pipeline runs a latent, and with what picture and mask."""

    name: str  # txt2img, img2img or inpaint
    strength: float
    source: Image.Image | None = None
    mask: Image.Image | None = None


def _task(model: LoadedModel, latent: Latent, params: GenerationParams) -> _Task:
    """An empty latent is text-to-image, encoded samples image-to-image, a mask inpainting."""
    strength = 1.0 if params.strength is None else params.strength
    if latent.mask is not None:
        if latent.source is None:
            raise ImageError("Inpainting needs the encoded image, not only a mask.")
        return _Task("inpaint", strength, latent.source, latent.mask)
    if model.info.inpaint:
        # A 9-channel inpainting UNet generates through the inpaint pipeline with an all-white mask.
        size = (round_to_8(latent.width), round_to_8(latent.height))
        source = latent.source or Image.new("RGB", size, (127, 127, 127))
        task_strength = strength if latent.samples else 1.0
        return _Task("inpaint", task_strength, source, Image.new("L", source.size, 255))
    if latent.samples:
        return _Task("img2img", strength)
    return _Task("txt2img", 1.0)


def _pipeline_arguments(
    task: _Task,
    positive: Conditioning,
    negative: Conditioning,
    params: GenerationParams,
    width: int,
    height: int,
) -> dict:
    kwargs: dict = {
        "prompt_embeds": positive.embeds,
        "negative_prompt_embeds": negative.embeds,
        "num_inference_steps": params.steps,
        "guidance_scale": params.cfg_scale,
        "guidance_rescale": params.guidance_rescale,
        "output_type": "latent",
    }
    if positive.pooled is not None:
        kwargs.update(
            pooled_prompt_embeds=positive.pooled, negative_pooled_prompt_embeds=negative.pooled
        )
    if params.pag_scale > 0:
        kwargs["pag_scale"] = params.pag_scale
    if task.name == "txt2img":
        kwargs.update(width=width, height=height)
    elif task.name == "img2img":
        kwargs.update(strength=task.strength)
    else:
        kwargs.update(
            image=task.source,
            mask_image=task.mask,
            width=task.source.width,
            height=task.source.height,
            strength=task.strength,
        )
    return kwargs


def sample(
    model: LoadedModel,
    positive: Conditioning,
    negative: Conditioning,
    latent: Latent,
    params: GenerationParams,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    previews: bool = True,
    memory: str = "none",
) -> Latent:
    """Denoise `latent.batch_size` images (image i seeded with seed + i).

    An empty latent gives text-to-image, encoded samples image-to-image (strength = how much
    changes), and a latent with a mask inpainting of its source pixels. `memory` is the
    memory mode the pipeline samples in (engine/memory_modes.py), undone when it returns.
    """
    # 1. The task, the pipeline that runs it (sharing the model's weights) and its arguments.
    width, height = round_to_8(latent.width), round_to_8(latent.height)
    task = _task(model, latent, params)
    negative = empty_negative(model, negative)
    pag = params.pag_scale > 0
    pipe = model.pipeline(task.name, pag=pag)
    kwargs = _pipeline_arguments(task, positive, negative, params, width, height)

    # 2. What runs after each step: the CFG cut-off (not with PAG, whose batches differ).
    cutoff = params.cfg_cutoff if params.cfg_cutoff < 1 and params.cfg_scale > 1 else None
    if cutoff is not None and pag:
        log.info("CFG cut-off is not applied together with perturbed-attention guidance")
        cutoff = None
    maker = None
    if previews and progress is not None:
        maker = PreviewMaker(
            latent_rgb_for(model.info.family, model.info.path), model.choice.device
        )
    callback_tensors = PipelineState(pipe).callback_tensors

    # 3. One pipeline call per image, each with its own seeded sampler and noise.
    count = latent.batch_size
    samples: list[torch.Tensor] = []
    made: list[GenerationParams] = []
    # The memory mode is the job's: the pipeline's modules are shared with the next job.
    with memory_mode(pipe, memory, model.choice.device):
        for index in range(count):
            if cancel is not None:
                cancel.raise_if_cancelled()
            seed = params.seed + index
            pipe.scheduler = make_scheduler(params.sampler, model.scheduler_config, seed=seed)
            on_step = StepCallback(
                image_index=index,
                image_count=count,
                cfg_cutoff=cutoff,
                tap=DenoisedTap(pipe.scheduler),
                preview=maker,
                progress=progress,
                cancel=cancel,
                callback_tensors=callback_tensors,
            )
            if task.name == "img2img":
                kwargs["image"] = latent.samples[index % len(latent.samples)]
            out = pipe(
                **kwargs,
                generator=torch.Generator("cpu").manual_seed(seed),
                callback_on_step_end=on_step,
                callback_on_step_end_tensor_inputs=on_step.tensor_inputs,
            ).images
            if cancel is not None and cancel.cancelled:
                raise Cancelled()
            samples.append(out)

            # 4. What reproduces this image alone.
            made.append(
                params.with_(
                    mode=task.name,
                    prompt=positive.text,
                    negative_prompt=negative.text,
                    seed=seed,
                    batch_size=1,
                    batch_index=0,
                    width=width,
                    height=height,
                    strength=None if task.name == "txt2img" else task.strength,
                    model=model.name,
                    model_family=model.info.config_name,
                )
            )
    trim_heap()  # the denoising loop's activations, before the decode allocates its own
    return latent.with_(width=width, height=height, samples=tuple(samples), params=tuple(made))
