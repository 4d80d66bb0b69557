"""bf16 on the CPU as an option: speed per step and pixel difference against fp32.

Runs the default text-to-image workflow (the graph path) on the same model in fp32 and in bf16
(Settings > Precision, `--precision bf16`), interleaved, each in its own runtime, and prints the
ratio of median step times and how far the bf16 pixels are from the fp32 ones. CPUs with native
bf16 (AVX512-BF16, AMX) are where it can pay off.

    python bench/bf16_cpu.py                       # a small SD1-shaped random model
    python bench/bf16_cpu.py --model /tmp/sd15.safetensors --size 256 --steps 4
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


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    found = [f for f in ("avx512_bf16", "amx_bf16") if f" {f}" in text]
    return ", ".join(found) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import numpy as np

    from studio.engine.device import usable_cores
    from studio.runtime.events import Progress
    from studio.runtime.one_call import run_workflow
    from studio.runtime.worker import Runtime

    model, config = args.model, args.config
    if model is None:
        from bench.small_model import build

        model, config = build(Path(tempfile.mkdtemp(prefix="studio-bench-")))
    values = {
        "model.path": str(model),
        "model.config": str(config or ""),
        "positive.text": "a red circle on a blue background",
        "sample.steps": args.steps,
        "sample.sampler": "Euler",
        "sample.cfg_scale": 7.0,
        "latent.width": args.size,
        "latent.height": args.size,
    }
    runtimes = {p: Runtime(device="cpu", precision=p) for p in ("fp32", "bf16")}
    steps: dict[str, list[float]] = {p: [] for p in runtimes}
    images = {}

    def one(precision: str, seed: int) -> None:
        marks: list[float] = []

        def on_event(event):
            if isinstance(event, Progress):
                marks.append(time.perf_counter())

        # A new seed each round: the node cache would otherwise reuse the last result.
        run_values = {**values, "sample.seed": seed}
        result = run_workflow("txt2img", run_values, runtime=runtimes[precision], on_event=on_event)
        steps[precision].append((marks[-1] - marks[0]) / (len(marks) - 1))
        images[precision] = np.asarray(result.images[0], dtype=np.float64)

    try:
        for precision in runtimes:  # warm-up: loads and first calls
            one(precision, 1)
        for values_list in steps.values():
            values_list.clear()
        for round_index in range(args.rounds):
            order = ["fp32", "bf16"] if round_index % 2 == 0 else ["bf16", "fp32"]
            for precision in order:
                one(precision, 1234 + round_index)
    finally:
        for runtime in runtimes.values():
            runtime.shutdown()

    fp32, bf16 = statistics.median(steps["fp32"]), statistics.median(steps["bf16"])
    diff = np.abs(images["bf16"] - images["fp32"])
    mse = float((diff**2).mean())
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    print(f"model: {Path(model).name}, {args.size}x{args.size}, {args.steps} steps, Euler, CFG 7")
    print(f"CPU bf16 support: {cpu_flags()}; jobs on every core ({usable_cores()}); "
          f"{args.rounds} interleaved rounds")  # fmt: skip
    print()
    print(f"per step: fp32 {fp32:.3f} s, bf16 {bf16:.3f} s, bf16 / fp32 = {bf16 / fp32:.2f}")
    print(f"pixels vs fp32: mean |diff| {diff.mean():.2f}, max {diff.max():.0f} (0-255), "
          f"PSNR {psnr:.1f} dB")  # fmt: skip


if __name__ == "__main__":
    main()
