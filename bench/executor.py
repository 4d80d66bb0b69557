"""The graph executor's node cache on the default text-to-image workflow.

Prints: a job with a cold node cache (models loaded), the time of a rerun with nothing changed
(target <= 50 ms), and which nodes a seed-only rerun executes (it must not encode text or load
the model). The graph path against plain diffusers is bench/overhead.py.

    python bench/executor.py                       # a small SD1-shaped random model, CPU
    python bench/executor.py --model sd15.safetensors --size 512 --steps 20
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
    parser.add_argument("--model", type=Path)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from studio.engine.checkpoint import ModelCache
    from studio.engine.device import choose_device
    from studio.engine.progress import CancelToken
    from studio.graph.serialize import to_dict
    from studio.nodes.context import RunContext
    from studio.nodes.defaults import default_workflow, set_params
    from studio.runtime.executor import Executor

    choice = choose_device(args.device)
    model_path, config = args.model, args.config
    if model_path is None:
        from bench.small_model import build

        model_path, config = build(Path(tempfile.mkdtemp(prefix="studio-bench-")))
    out = Path(tempfile.mkdtemp(prefix="studio-bench-out-"))
    models = ModelCache()
    model = models.get(model_path, choice, config=config)

    prompt, negative, seed = "a red circle on a blue background", "blurry", 1234
    graph = set_params(
        default_workflow("txt2img"),
        {
            "model.path": str(model_path),
            "model.config": str(config or ""),
            "positive.text": prompt,
            "negative.text": negative,
            "sample.seed": seed,
            "sample.steps": args.steps,
            "sample.sampler": "Euler",
            "latent.width": args.size,
            "latent.height": args.size,
        },
    )
    def context() -> RunContext:
        return RunContext(
            models=models,
            device=choice,
            cancel=CancelToken(),
            output_dir=out,
            workflow=to_dict(graph),
        )

    def via_graph(executor: Executor) -> None:
        executor.run(graph, context(), lambda event: None, "bench")

    via_graph(Executor())  # warm-up
    cold = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        via_graph(Executor())
        cold.append(time.perf_counter() - started)

    warm = Executor()
    via_graph(warm)
    reruns = []
    for _ in range(10):
        started = time.perf_counter()
        via_graph(warm)
        reruns.append(time.perf_counter() - started)

    loads_before = models.loads
    before = dict(warm.runs)
    graph.set_param("sample", "seed", seed + 1)
    via_graph(warm)
    ran = {k: v - before.get(k, 0) for k, v in warm.runs.items() if v - before.get(k, 0)}

    print(f"model: {model.name} ({model.info.label}), {choice.label}")
    print(f"{args.size}x{args.size}, {args.steps} steps, Euler, {args.rounds} rounds")
    print()
    print(f"{'':<34}{'median':>10}{'min':>10}")
    print(f"{'graph, cold node cache (s)':<34}{statistics.median(cold):>10.3f}{min(cold):>10.3f}")
    rerun_ms = statistics.median(reruns) * 1e3
    print(f"{'graph rerun, nothing changed (ms)':<34}{rerun_ms:>10.1f}{min(reruns) * 1e3:>10.1f}")
    print()
    print(f"rerun with nothing changed: {rerun_ms:.1f} ms   (target <= 50 ms)")
    print(f"seed-only rerun executed: {', '.join(f'{k} x{v}' for k, v in sorted(ran.items()))}")
    print(f"  text encodings: {ran.get('Prompt', 0)}, model loads: {models.loads - loads_before}")


if __name__ == "__main__":
    main()
