"""What happens after each denoising step: CFG cut-off, preview and progress, cancel."""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from studio.engine.pipeline_state import PipelineState
from studio.engine.preview import PreviewMaker
from studio.engine.progress import CancelToken, ProgressCallback, Step

# Tensors that classifier-free guidance doubles (negative half first); halved at the CFG cut-off.
CFG_DOUBLED = ("prompt_embeds", "add_text_embeds", "add_time_ids", "mask", "masked_image_latents")


class DenoisedTap:
    """Wraps scheduler.step to keep the latest denoised estimate (x0) for previews."""

    def __init__(self, scheduler: Any) -> None:
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


class StepCallback:
    """diffusers' `callback_on_step_end` for one image of a batch.

    - CFG cut-off: after `cfg_cutoff` of the steps, guidance stops and the doubled tensors
      lose their unconditional half, so each remaining step is one UNet pass.
    - Progress: `Step(done, total, preview)` counted over the whole batch; the preview is the
      denoised estimate mapped to RGB (no VAE), or None when previews are off.
    - Cancel: checked last, so a cancel made while this step was reported stops the next one.
    """

    def __init__(
        self,
        *,
        image_index: int,
        image_count: int,
        cfg_cutoff: float | None,
        tap: DenoisedTap,
        preview: PreviewMaker | None,
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
        callback_tensors: tuple[str, ...],
    ) -> None:
        self.image_index = image_index
        self.image_count = image_count
        self.cfg_cutoff = cfg_cutoff
        self.tap = tap
        self.preview = preview
        self.progress = progress
        self.cancel = cancel
        self.guided = True
        names = ["latents"]
        if cfg_cutoff is not None:
            names += [n for n in CFG_DOUBLED if n in callback_tensors]
        self.tensor_inputs = names

    def __call__(self, pipe: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        state = PipelineState(pipe)
        n = state.steps
        if self.cfg_cutoff is not None and self.guided and i + 1 >= math.ceil(self.cfg_cutoff * n):
            self.guided = False
            state.stop_guidance()
            for name in self.tensor_inputs[1:]:
                value = tensors.get(name)
                if value is not None and value.shape[0] % 2 == 0:
                    tensors[name] = value.chunk(2)[1]
        if self.progress is not None:
            image = None
            if self.preview is not None:
                x0 = self.tap.x0
                image = self.preview(x0 if x0 is not None else tensors["latents"])
            done = self.image_index * n + i + 1
            self.progress(Step(done, self.image_count * n, image))
        if self.cancel is not None and self.cancel.cancelled:
            state.interrupt()
        return tensors
