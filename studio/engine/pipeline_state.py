"""The few private fields of a diffusers pipeline that Studio touches, all in one place.

diffusers documents `pipe._interrupt` (set from the step callback: the remaining steps are
skipped, the latents still come back) but keeps the guidance scale and the list of tensors a
callback may replace private. If a diffusers release renames one, this is the file to change.
"""

from __future__ import annotations

from typing import Any


class PipelineState:
    """Read and steer a running diffusers pipeline from its step callback."""

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe

    @property
    def steps(self) -> int:
        """Denoising steps this call runs (img2img strength included)."""
        return int(self._pipe._num_timesteps)

    @property
    def callback_tensors(self) -> tuple[str, ...]:
        """Names of the tensors a step callback may read and replace."""
        return tuple(getattr(self._pipe, "_callback_tensor_inputs", ("latents",)))

    def stop_guidance(self) -> None:
        """Run the remaining steps without classifier-free guidance (one UNet pass each).

        The pipeline decides per step from `_guidance_scale > 1` whether to batch the
        unconditional half; the callback must also drop that half from the doubled tensors.
        """
        self._pipe._guidance_scale = 0.0

    def interrupt(self) -> None:
        """Skip the remaining steps; the pipeline still returns what it has."""
        self._pipe._interrupt = True
