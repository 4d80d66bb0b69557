"""Engine text-to-image vs a plain diffusers pipeline call on the same loaded model.

Runs both interleaved in one process with the same sampler, seed and size, and prints the
ratio of median times, whether the pixels are identical, and what the per-step live preview
costs as a share of a step.

    python bench/overhead.py                      # a small SD1-shaped random model, CPU
    python bench/overhead.py --model sd15.safetensors --size 512 --steps 20   # a real one
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, help="checkpoint (default: a small random SD1-shaped one)"
    )
    parser.add_argument("--config", type=Path, help="config folder for a non-standard model")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sampler", default="Euler")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import numpy as np
    import torch

    from studio.engine import preview as preview_module
    from studio.engine.checkpoint import load_model
    from studio.engine.device import choose_device
    from studio.engine.generate import generate
    from studio.engine.samplers import make_scheduler
    from studio.formats.parameters import GenerationParams

    choice = choose_device(args.device)
    model_path, config = args.model, args.config
    if model_path is None:
        from bench.small_model import build

        model_path, config = build(Path(tempfile.mkdtemp(prefix="studio-bench-")))
    model = load_model(model_path, choice, config=config)
    pipe = model.base
    params = GenerationParams(
        prompt="a red circle on a blue background",
        negative_prompt="blurry",
        steps=args.steps,
        sampler=args.sampler,
        cfg_scale=7.0,
        seed=1234,
        width=args.size,
        height=args.size,
    )

    preview_time = [0.0, 0]
    original_call = preview_module.PreviewMaker.__call__

    def timed_preview(self, latents):
        if latents.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        out = original_call(self, latents)
        preview_time[0] += time.perf_counter() - started
        preview_time[1] += 1
        return out

    preview_module.PreviewMaker.__call__ = timed_preview

    def sync() -> None:
        if choice.device.type == "cuda":
            torch.cuda.synchronize()

    def plain():
        pipe.scheduler = make_scheduler(params.sampler, model.base.scheduler.config)
        return pipe(
            prompt=params.prompt,
            negative_prompt=params.negative_prompt,
            num_inference_steps=params.steps,
            guidance_scale=params.cfg_scale,
            width=params.width,
            height=params.height,
            generator=torch.Generator("cpu").manual_seed(params.seed),
        ).images[0]

    def engine():
        return generate(model, params, progress=lambda step: None)[0].image

    runs = {"plain": [], "engine": []}
    images = {}
    plain(), engine()  # warm-up: first calls allocate and pick kernels
    preview_time[:] = [0.0, 0]
    for round_index in range(args.rounds):
        order = [("plain", plain), ("engine", engine)]
        if round_index % 2:
            order.reverse()
        for name, fn in order:
            sync()
            started = time.perf_counter()
            images[name] = fn()
            sync()
            runs[name].append(time.perf_counter() - started)

    plain_s = statistics.median(runs["plain"])
    engine_s = statistics.median(runs["engine"])
    step_s = engine_s / params.steps
    per_preview = preview_time[0] / max(1, preview_time[1])
    same = np.array_equal(np.asarray(images["plain"]), np.asarray(images["engine"]))
    print(
        f"model: {model.name} ({model.info.label}), {choice.label}, {torch.get_num_threads()} threads"
    )
    print(
        f"{args.size}x{args.size}, {params.steps} steps, {params.sampler}, CFG {params.cfg_scale}, {args.rounds} rounds"
    )
    print()
    print(f"{'':<22}{'median s':>10}{'min s':>10}")
    print(f"{'plain diffusers':<22}{plain_s:>10.3f}{min(runs['plain']):>10.3f}")
    print(f"{'studio engine':<22}{engine_s:>10.3f}{min(runs['engine']):>10.3f}")
    print()
    print(f"engine / plain (median): {engine_s / plain_s:.3f}   (target <= 1.03)")
    print(f"identical pixels: {'yes' if same else 'NO'}")
    print(
        f"preview: {per_preview * 1e3:.3f} ms per step = {100 * per_preview / step_s:.2f} % of a "
        f"{step_s * 1e3:.1f} ms step   (target <= 2 %)"
    )


if __name__ == "__main__":
    main()
