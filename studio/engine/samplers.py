"""Sampler names users know, mapped to diffusers schedulers."""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass, field
from typing import Any

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSDEScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LCMScheduler,
    LMSDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from studio.errors import ParameterError
from studio.formats.parameters import SAMPLERS


@dataclass(frozen=True)
class Sampler:
    name: str
    scheduler: type[SchedulerMixin]
    options: dict[str, Any] = field(default_factory=dict)
    needs: str | None = None  # an optional Python package the scheduler imports


_TABLE = {
    s.name: s
    for s in (
        Sampler("Euler", EulerDiscreteScheduler),
        Sampler("Euler a", EulerAncestralDiscreteScheduler),
        Sampler("Heun", HeunDiscreteScheduler),
        Sampler("DPM++ 2M", DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
        Sampler(
            "DPM++ 2M Karras",
            DPMSolverMultistepScheduler,
            {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True},
        ),
        Sampler("DPM++ SDE Karras", DPMSolverSDEScheduler, {"use_karras_sigmas": True}, "torchsde"),
        Sampler("DDIM", DDIMScheduler),
        Sampler("UniPC", UniPCMultistepScheduler),
        Sampler("LMS", LMSDiscreteScheduler, needs="scipy"),
        Sampler("LCM", LCMScheduler),
    )
}
assert tuple(_TABLE) == SAMPLERS, "sampler names drifted from studio.formats.parameters.SAMPLERS"

_ALIASES = {name.lower().replace(" ", "").replace("+", "p"): name for name in _TABLE}
_ALIASES.update({"eulera": "Euler a", "euler_a": "Euler a", "euler_ancestral": "Euler a"})


def sampler_by_name(name: str) -> Sampler:
    """Find a sampler by its user-facing name (case and spacing forgiven)."""
    if name in _TABLE:
        return _TABLE[name]
    key = name.lower().replace(" ", "").replace("+", "p")
    if key in _ALIASES:
        return _TABLE[_ALIASES[key]]
    raise ParameterError(f"Unknown sampler '{name}': choose one of {', '.join(SAMPLERS)}.")


def _supports_zero_snr(sampler: Sampler) -> bool:
    return "rescale_betas_zero_snr" in inspect.signature(sampler.scheduler.__init__).parameters


def make_scheduler(
    name: str, base_config: Any, *, seed: int | None = None, **overrides: Any
) -> SchedulerMixin:
    """A fresh scheduler for `name`, keeping the model's betas and prediction type.

    `seed` seeds samplers that draw their own noise outside the pipeline's generator.
    """
    sampler = sampler_by_name(name)
    if sampler.needs and importlib.util.find_spec(sampler.needs) is None:
        raise ParameterError(
            f"The {sampler.name} sampler needs the '{sampler.needs}' package: "
            f"pip install {sampler.needs}, or pick another sampler."
        )
    config = dict(base_config)
    if config.get("rescale_betas_zero_snr") and not _supports_zero_snr(sampler):
        usable = ", ".join(n for n, s in _TABLE.items() if _supports_zero_snr(s) and n != "LCM")
        raise ParameterError(
            f"The {sampler.name} sampler cannot run this model: it was trained to start from "
            f"pure noise (zero terminal SNR), which {sampler.name} does not support. "
            f"Pick one of: {usable}."
        )
    # A config written for another scheduler class may name options this one lacks; diffusers
    # ignores unknown keys with a warning, so drop the noisy ones it would complain about.
    for key in ("skip_prk_steps", "set_alpha_to_one", "clip_sample", "clip_sample_range"):
        if sampler.scheduler is not DDIMScheduler:
            config.pop(key, None)
    options = {**sampler.options, **overrides}
    if sampler.scheduler is DPMSolverSDEScheduler and seed is not None:
        # Its Brownian-tree noise is seeded from the global RNG unless given a seed.
        options.setdefault("noise_sampler_seed", seed % 2**63)
    if config.get("rescale_betas_zero_snr") and sampler.scheduler in (
        EulerDiscreteScheduler,
        EulerAncestralDiscreteScheduler,
        DDIMScheduler,
    ):
        options.setdefault("timestep_spacing", "trailing")
    return sampler.scheduler.from_config(config, **options)
