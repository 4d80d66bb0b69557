"""Studio's graph path (the default text-to-image workflow, run by the runtime's worker) vs a
plain diffusers pipeline call on the same loaded model.

Both run interleaved in one process with the same sampler, seed, size and CFG. Prints the
ratio of median job times and of median time per step (between the first and the last step's
callback, in both), whether the pixels are identical, and what the live preview of
every step costs as a share of a step.

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
    parser.add_argument("--steps", type=int, default=10, help="at least 2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sampler", default="Euler")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch threads for both (default: Studio's)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from studio.engine import preview as preview_module
    from studio.engine.checkpoint import ModelCache
    from studio.engine.device import choose_device
    from studio.engine.samplers import make_scheduler
    from studio.runtime.events import Progress
    from studio.runtime.executor import Executor
    from studio.runtime.one_call import run_workflow
    from studio.runtime.worker import Runtime

    choice = choose_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    model_path, config = args.model, args.config
    if model_path is None:
        from bench.small_model import build

        model_path, config = build(Path(tempfile.mkdtemp(prefix="studio-bench-")))
    models = ModelCache()
    model = models.get(model_path, choice, config=config)
    pipe = model.base
    prompt, negative, seed, cfg = "a red circle on a blue background", "blurry", 1234, 7.0
    values = {
        "model.path": str(model_path),
        "model.config": str(config or ""),
        "positive.text": prompt,
        "negative.text": negative,
        "sample.seed": seed,
        "sample.steps": args.steps,
        "sample.sampler": args.sampler,
        "sample.cfg_scale": cfg,
        "latent.width": args.size,
        "latent.height": args.size,
    }

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

    loop_seconds: list[float] = []

    def plain():
        pipe.scheduler = make_scheduler(args.sampler, model.scheduler_config)
        marks: list[float] = []

        def on_step(p, i, t, tensors):
            marks.append(time.perf_counter())
            return tensors

        image = pipe(
            prompt=prompt,
            negative_prompt=negative,
            num_inference_steps=args.steps,
            guidance_scale=cfg,
            width=args.size,
            height=args.size,
            generator=torch.Generator("cpu").manual_seed(seed),
            callback_on_step_end=on_step,
        ).images[0]
        loop_seconds.append((marks[-1] - marks[0]) / (len(marks) - 1))
        return image

    runtime = Runtime(device=choice, models=models)
    sample_seconds: list[float] = []

    def graph():
        # A fresh node cache: every node runs, as a plain call does everything again.
        runtime.executor = Executor()
        marks: list[float] = []

        def on_event(event):
            if isinstance(event, Progress):
                marks.append(time.perf_counter())

        result = run_workflow("txt2img", values, runtime=runtime, on_event=on_event)
        sample_seconds.append((marks[-1] - marks[0]) / (len(marks) - 1))
        return result.images[0]

    runs: dict[str, list[float]] = {"plain": [], "graph": []}
    images = {}
    plain(), graph()  # warm-up: first calls allocate and pick kernels
    preview_time[:] = [0.0, 0]
    loop_seconds.clear(), sample_seconds.clear()
    for round_index in range(args.rounds):
        order = [("plain", plain), ("graph", graph)]
        if round_index % 2:
            order.reverse()
        for name, fn in order:
            sync()
            started = time.perf_counter()
            images[name] = fn()
            sync()
            runs[name].append(time.perf_counter() - started)
    runtime.shutdown()

    plain_s, graph_s = statistics.median(runs["plain"]), statistics.median(runs["graph"])
    plain_step = statistics.median(loop_seconds)
    graph_step = statistics.median(sample_seconds)
    per_preview = preview_time[0] / max(1, preview_time[1])
    same = np.array_equal(np.asarray(images["plain"]), np.asarray(images["graph"]))
    print(
        f"model: {model.name} ({model.info.label}), {choice.label}, "
        f"{torch.get_num_threads()} threads of {__import__('os').cpu_count()} cores"
    )
    print(
        f"{args.size}x{args.size}, {args.steps} steps, {args.sampler}, CFG {cfg}, "
        f"{args.rounds} interleaved rounds"
    )
    print()
    print(f"{'':<30}{'median s':>10}{'min s':>10}{'per step':>10}")
    print(f"{'plain diffusers':<30}{plain_s:>10.3f}{min(runs['plain']):>10.3f}{plain_step:>10.4f}")
    print(
        f"{'studio graph (txt2img.json)':<30}{graph_s:>10.3f}{min(runs['graph']):>10.3f}"
        f"{graph_step:>10.4f}"
    )
    print()
    print(f"graph / plain, whole job (median): {graph_s / plain_s:.3f}")
    print(f"graph / plain, per step (median):  {graph_step / plain_step:.3f}   (target <= 1.02)")
    print(f"identical pixels: {'yes' if same else 'NO'}")
    print(
        f"preview: {per_preview * 1e3:.3f} ms per step = {100 * per_preview / graph_step:.2f} % of a "
        f"{graph_step * 1e3:.1f} ms step   (target <= 1 %)"
    )


if __name__ == "__main__":
    main()
