"""Loading checkpoints offline into diffusers pipelines, and keeping them loaded between jobs."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    DiffusionPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    StableDiffusionUpscalePipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)
from diffusers.utils import logging as diffusers_logging

from studio.engine.configs import bundled_config, load_tokenizers
from studio.engine.detect import CheckpointInfo, detect
from studio.engine.device import (
    DeviceChoice,
    device_memory_budget,
    free_device_memory,
    trim_heap,
)
from studio.engine.folder_loading import stream_folder_components
from studio.engine.half_storage import store_in_half
from studio.engine.single_file import can_stream, load_streamed
from studio.errors import ModelError

log = logging.getLogger(__name__)

# Studio reports loading itself; diffusers' own bars and dtype chatter would only confuse users.
diffusers_logging.set_verbosity_error()
diffusers_logging.disable_progress_bar()

TASKS = ("txt2img", "img2img", "inpaint")

_PIPELINES: dict[tuple[str, str], type[DiffusionPipeline]] = {
    ("sd", "txt2img"): StableDiffusionPipeline,
    ("sd", "img2img"): StableDiffusionImg2ImgPipeline,
    ("sd", "inpaint"): StableDiffusionInpaintPipeline,
    ("sdxl", "txt2img"): StableDiffusionXLPipeline,
    ("sdxl", "img2img"): StableDiffusionXLImg2ImgPipeline,
    ("sdxl", "inpaint"): StableDiffusionXLInpaintPipeline,
}


def _kind(info: CheckpointInfo) -> str:
    return "sdxl" if info.family == "sdxl" else "sd"


def pipeline_class(info: CheckpointInfo, task: str) -> type[DiffusionPipeline]:
    if info.family == "sd-x4-upscaler":
        return StableDiffusionUpscalePipeline
    return _PIPELINES[(_kind(info), task)]


def module_bytes(pipe: DiffusionPipeline) -> int:
    total = 0
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            total += sum(p.numel() * p.element_size() for p in module.parameters())
            total += sum(b.numel() * b.element_size() for b in module.buffers())
    return total


@dataclass
class LoadedModel:
    """One checkpoint on one device; its task pipelines share the same modules."""

    info: CheckpointInfo
    choice: DeviceChoice
    base: DiffusionPipeline
    nbytes: int
    load_seconds: float = 0.0
    _variants: dict[tuple[str, bool], DiffusionPipeline] = field(default_factory=dict)
    # The checkpoint's own scheduler settings, copied at load. Generation swaps the sampler on
    # the shared pipelines; building the next sampler from the swapped one's config would pick
    # up that class's defaults (DDIM after Euler got clip_sample=True and clipped the latents).
    scheduler_config: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.scheduler_config = dict(self.base.scheduler.config)

    @property
    def name(self) -> str:
        return self.info.path.name

    @property
    def native_size(self) -> int:
        """The side length (pixels) the model was trained at."""
        unet = self.base.unet
        return int(unet.config.sample_size) * int(self.base.vae_scale_factor)

    def pipeline(self, task: str, pag: bool = False) -> DiffusionPipeline:
        """The pipeline for a task, sharing this checkpoint's weights (no second copy)."""
        if self.info.family == "sd-x4-upscaler":
            return self.base
        # An inpainting (9-channel) UNet only runs inside the inpaint pipeline.
        if self.info.inpaint:
            task = "inpaint"
        key = (task, pag)
        if key not in self._variants:
            if not pag and isinstance(self.base, pipeline_class(self.info, task)):
                self._variants[key] = self.base
            elif pag:
                self._variants[key] = _pag_pipeline(self.base, task, self.choice.dtype)
            else:
                cls = pipeline_class(self.info, task)
                self._variants[key] = cls.from_pipe(self.base, torch_dtype=self.choice.dtype)
        return self._variants[key]


def _pag_pipeline(base: DiffusionPipeline, task: str, dtype: torch.dtype) -> DiffusionPipeline:
    from diffusers import (
        AutoPipelineForImage2Image,
        AutoPipelineForInpainting,
        AutoPipelineForText2Image,
    )

    auto = {
        "txt2img": AutoPipelineForText2Image,
        "img2img": AutoPipelineForImage2Image,
        "inpaint": AutoPipelineForInpainting,
    }[task]
    try:
        return auto.from_pipe(base, enable_pag=True, pag_applied_layers=["mid"], torch_dtype=dtype)
    except (ValueError, KeyError) as exc:
        raise ModelError(
            f"Perturbed-attention guidance is not available for this model and mode ({exc})."
        ) from None


def _load_pipeline(
    info: CheckpointInfo, choice: DeviceChoice, config: Path | None
) -> DiffusionPipeline:
    task = "inpaint" if info.inpaint else "txt2img"
    cls = pipeline_class(info, task)
    extra: dict[str, Any] = {}
    if cls is not StableDiffusionUpscalePipeline and cls in (
        StableDiffusionPipeline,
        StableDiffusionInpaintPipeline,
    ):
        extra.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if info.layout == "diffusers":
        folder = info.path
        if not (folder / "tokenizer").exists():
            extra.update(load_tokenizers(config or bundled_config(info.config_name)))
        streamed = stream_folder_components(folder, choice.dtype, choice.device, skip=set(extra))
        return cls.from_pretrained(
            folder, torch_dtype=choice.dtype, local_files_only=True, **streamed, **extra
        )
    if config is None:
        if not info.standard:
            raise ModelError(
                f"{info.path.name} ({info.label}) has layer sizes that differ from the standard "
                "ones: give its config folder to load it."
            )
        config = bundled_config(info.config_name)
    extra.update(load_tokenizers(config))
    if can_stream(info):
        return load_streamed(info, config, cls, choice.dtype, choice.device, extra)
    return cls.from_single_file(
        str(info.path),
        config=str(config),
        local_files_only=True,
        torch_dtype=choice.dtype,
        **extra,
    )


def _check_complete(pipe: DiffusionPipeline, info: CheckpointInfo) -> None:
    """diffusers leaves weights it found no key for on the meta device without a word."""
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            missing = [n for n, p in module.named_parameters() if p.is_meta]
            if missing:
                raise ModelError(
                    f"{info.path.name} is missing {len(missing)} weights of its {name} "
                    f"(e.g. {missing[0]}): the file is incomplete or not a {info.label} model."
                )


def _apply_prediction(pipe: DiffusionPipeline, info: CheckpointInfo) -> None:
    """Make the scheduler match what the weights were trained for (v-prediction, zero SNR)."""
    sched = pipe.scheduler
    changes: dict[str, Any] = {}
    if sched.config.get("prediction_type", "epsilon") != info.prediction:
        changes["prediction_type"] = info.prediction
    if info.zero_snr and not sched.config.get("rescale_betas_zero_snr", False):
        changes["rescale_betas_zero_snr"] = True
    if changes:
        pipe.scheduler = type(sched).from_config(sched.config, **changes)


def load_model(
    path: str | Path,
    choice: DeviceChoice,
    *,
    config: Path | None = None,
    info: CheckpointInfo | None = None,
) -> LoadedModel:
    """Load a checkpoint file or diffusers folder onto a device, offline."""
    info = info or detect(path)
    started = time.perf_counter()
    try:
        pipe = _load_pipeline(info, choice, config)
    except ModelError:
        raise
    except torch.cuda.OutOfMemoryError:
        free_device_memory(choice.device)
        raise ModelError(f"Not enough GPU memory to load {info.path.name}.") from None
    except Exception as exc:  # diffusers raises many kinds; the user needs one sentence
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"Could not load {info.path.name} as {info.label}: {first}") from exc
    _check_complete(pipe, info)
    _apply_prediction(pipe, info)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(choice.device)
    store_in_half(pipe, choice.dtype)
    trim_heap()  # what the load freed (headers, conversion maps, fp16 reads)
    seconds = time.perf_counter() - started
    log.info("Loaded %s (%s) in %.1f s on %s", info.path.name, info.label, seconds, choice.label)
    return LoadedModel(info, choice, pipe, module_bytes(pipe), seconds)


class ModelCache:
    """Keeps recently used models loaded, dropping the least recently used past a budget."""

    def __init__(self, budget_bytes: int | None = None) -> None:
        self.budget_bytes = budget_bytes
        self._models: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times a model was read from disk (for tests and benches)

    @staticmethod
    def _key(path: Path, choice: DeviceChoice, config: Path | None) -> tuple:
        stat = path.stat() if path.exists() else None
        stamp = (stat.st_mtime_ns, stat.st_size) if stat else None
        return (str(path.resolve()), stamp, str(choice.device), str(choice.dtype), str(config))

    def get(
        self, path: str | Path, choice: DeviceChoice, *, config: Path | None = None
    ) -> LoadedModel:
        path = Path(path).expanduser()
        if not path.exists():
            raise ModelError(f"Model file not found: {path}.")
        key = self._key(path, choice, config)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            budget = self.budget_bytes or device_memory_budget(choice.device)
            incoming = _estimate_bytes(path, choice)
            self._evict_for(incoming, budget, choice)
            model = load_model(path, choice, config=config)
            self.loads += 1
            self._models[key] = model
            return model

    def _evict_for(self, incoming: int, budget: int, choice: DeviceChoice) -> None:
        while self._models and sum(m.nbytes for m in self._models.values()) + incoming > budget:
            _, dropped = self._models.popitem(last=False)
            log.info("Unloading %s to stay within the memory budget", dropped.name)
            del dropped
            free_device_memory(choice.device)

    def clear(self) -> None:
        with self._lock:
            devices = {m.choice.device for m in self._models.values()}
            self._models.clear()
            for device in devices:
                free_device_memory(device)

    def __len__(self) -> int:
        return len(self._models)


def _estimate_bytes(path: Path, choice: DeviceChoice) -> int:
    """Rough memory a model will take once loaded: file size, scaled to the target dtype."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    # Files are mostly fp16 or fp32; assume fp16 on disk, the common download.
    return size * (2 if choice.dtype == torch.float32 else 1)
