"""Text-to-image, image-to-image and inpainting on a loaded checkpoint, with previews and cancel."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from dataclasses import dataclass

import torch
from PIL import Image

from studio.engine import masks
from studio.engine.checkpoint import LoadedModel
from studio.engine.device import free_device_memory
from studio.engine.latents import (
    Conditioning,
    Latent,
    decode,
    empty_negative,
    encode_image,
    encode_prompt,
)
from studio.engine.preview import PreviewMaker, latent_rgb_for
from studio.engine.progress import CancelToken, ProgressCallback, Step
from studio.engine.samplers import make_scheduler, sampler_by_name
from studio.errors import Cancelled, ImageError, OutOfMemoryError, ParameterError
from studio.formats.parameters import MODES, GenerationParams, round_to_8

log = logging.getLogger(__name__)

MIN_SIDE = 64
MAX_SIDE = 8192
MAX_PIXELS = 4096 * 4096
MAX_STEPS = 1000
MAX_BATCH = 100
# Tensors that classifier-free guidance doubles (negative half first); halved at the CFG cut-off.
_CFG_DOUBLED = ("prompt_embeds", "add_text_embeds", "add_time_ids", "mask", "masked_image_latents")


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    params: GenerationParams  # exactly what reproduces this one image


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


class _DenoisedTap:
    """Wraps scheduler.step to keep the latest denoised estimate (x0) for previews."""

    def __init__(self, scheduler) -> None:
        self.x0: torch.Tensor | None = None
        step_fn = scheduler.step

        # functools.wraps keeps step's signature visible: pipelines inspect it to decide whether
        # to pass the generator, and ancestral samplers are only seeded when they get it.
        @functools.wraps(step_fn)
        def step(*args, **kwargs):
            out = step_fn(*args, **kwargs)
            if isinstance(out, tuple):
                x0 = out[1] if len(out) > 1 and isinstance(out[1], torch.Tensor) else None
            else:
                x0 = getattr(out, "pred_original_sample", None)
            if x0 is None:
                # Multistep solvers (DPM++, UniPC) keep their x0 predictions instead of returning them.
                history = getattr(scheduler, "model_outputs", None)
                if history and history[-1] is not None:
                    x0 = history[-1]
            self.x0 = x0
            return out

        scheduler.step = step


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def generate(
    model: LoadedModel,
    params: GenerationParams,
    *,
    init_image: Image.Image | None = None,
    mask: Image.Image | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    previews: bool = True,
) -> list[GeneratedImage]:
    """One whole job in one call: encode prompts, prepare the latent, sample, decode, composite."""
    params, notes = check_params(params)
    for note in notes:
        log.warning(note)
    mode = params.mode
    if mode in ("img2img", "inpaint") and init_image is None:
        raise ImageError(f"{mode} needs an input image.")
    with out_of_memory_as_error(model, params.width, params.height):
        positive = encode_prompt(model, params.prompt)
        negative = encode_prompt(model, params.negative_prompt)
        job = None
        if mode == "inpaint":
            if mask is None:
                raise ImageError("Inpainting needs a mask.")
            job = masks.prepare_inpaint(
                init_image,
                mask,
                grow=params.mask_grow,
                feather=params.mask_feather,
                masked_only=params.masked_only,
                padding=params.masked_padding,
                target=model.native_size,
                color_match=params.color_match,
            )
            width, height = job.image.size
            latent = Latent(width, height, params.batch_size, source=job.image, mask=job.mask)
        elif mode == "img2img":
            image = init_image.convert("RGB")
            if image.size != (params.width, params.height):
                image = image.resize((params.width, params.height), Image.LANCZOS)
            latent = encode_image(model, image).with_(batch_size=params.batch_size)
        else:
            latent = Latent(params.width, params.height, params.batch_size)
        sampled = sample(
            model,
            positive,
            negative,
            latent,
            params,
            progress=progress,
            cancel=cancel,
            previews=previews,
        )
        images = decode(model, sampled)
    results = []
    for image, image_params in zip(images, sampled.params, strict=True):
        if job is not None:
            image = masks.finish_inpaint(job, image)
        results.append(
            GeneratedImage(
                image, image_params.with_(mode=mode, width=image.width, height=image.height)
            )
        )
    return results


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
) -> Latent:
    """Denoise `latent.batch_size` images (image i seeded with seed + i).

    An empty latent gives text-to-image, encoded samples image-to-image (strength = how much
    changes), and a latent with a mask inpainting of its source pixels.
    """
    width, height = round_to_8(latent.width), round_to_8(latent.height)
    if latent.mask is not None:
        if latent.source is None:
            raise ImageError("Inpainting needs the encoded image, not only a mask.")
        task, source, mask = "inpaint", latent.source, latent.mask
    elif latent.samples:
        task, source, mask = "img2img", None, None
    else:
        task, source, mask = "txt2img", None, None
    strength = 1.0 if task == "txt2img" else (1.0 if params.strength is None else params.strength)
    if model.info.inpaint and task != "inpaint":
        # A 9-channel inpainting UNet generates through the inpaint pipeline with an all-white mask.
        source = latent.source or Image.new("RGB", (width, height), (127, 127, 127))
        mask = Image.new("L", source.size, 255)
        task = "inpaint"

    negative = empty_negative(model, negative)
    pag = params.pag_scale > 0
    pipe = model.pipeline(task, pag=pag)
    maker = PreviewMaker(latent_rgb_for(model.info.family, model.info.path), model.choice.device)
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
    if pag:
        kwargs["pag_scale"] = params.pag_scale
    if task == "txt2img":
        kwargs.update(width=width, height=height)
    elif task == "img2img":
        kwargs.update(strength=strength)
    else:
        kwargs.update(
            image=source,
            mask_image=mask,
            width=source.width,
            height=source.height,
            strength=strength,
        )

    cutoff = params.cfg_cutoff < 1 and params.cfg_scale > 1 and not pag
    if params.cfg_cutoff < 1 and pag:
        log.info("CFG cut-off is not applied together with perturbed-attention guidance")
    tensor_inputs = ["latents"]
    if cutoff:
        tensor_inputs += [n for n in _CFG_DOUBLED if n in pipe._callback_tensor_inputs]

    count = latent.batch_size
    samples: list[torch.Tensor] = []
    made: list[GenerationParams] = []
    for index in range(count):
        if cancel is not None:
            cancel.raise_if_cancelled()
        seed = params.seed + index
        state = {"guided": True}
        pipe.scheduler = make_scheduler(params.sampler, model.scheduler_config, seed=seed)
        tap = _DenoisedTap(pipe.scheduler)

        def on_step_end(pipe, i, t, tensors, index=index, state=state, tap=tap):
            n = pipe.num_timesteps
            if cutoff and state["guided"] and i + 1 >= math.ceil(params.cfg_cutoff * n):
                state["guided"] = False
                pipe._guidance_scale = 0.0
                for name in tensor_inputs[1:]:
                    value = tensors.get(name)
                    if value is not None and value.shape[0] % 2 == 0:
                        tensors[name] = value.chunk(2)[1]
            if progress is not None:
                latents = tap.x0 if tap.x0 is not None else tensors["latents"]
                preview = maker(latents) if previews else None
                progress(Step(index * n + i + 1, count * n, preview))
            # Checked last, so a cancel made while handling this step stops before the next one.
            if cancel is not None and cancel.cancelled:
                pipe._interrupt = True
            return tensors

        if task == "img2img":
            kwargs["image"] = latent.samples[index % len(latent.samples)]
        generator = torch.Generator("cpu").manual_seed(seed)
        out = pipe(
            **kwargs,
            generator=generator,
            callback_on_step_end=on_step_end,
            callback_on_step_end_tensor_inputs=tensor_inputs,
        ).images
        if cancel is not None and cancel.cancelled:
            raise Cancelled()
        samples.append(out)
        made.append(
            params.with_(
                mode=task,
                prompt=positive.text,
                negative_prompt=negative.text,
                seed=seed,
                batch_size=1,
                batch_index=0,
                width=width,
                height=height,
                strength=None if task == "txt2img" and not model.info.inpaint else strength,
                model=model.name,
                model_family=model.info.config_name,
            )
        )
    return latent.with_(width=width, height=height, samples=tuple(samples), params=tuple(made))
