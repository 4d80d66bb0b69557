"""Inpainting a small mask on a 12-megapixel photo costs what it costs on a small picture.

The window's inpaint workflow (masked area only, only the changed area returned and saved),
run through the graph executor like every job, on a 4000x3000 picture and on a 512x512 one,
with the same 64x64 mask in the middle, the same model and steps. Each case runs in its own
process (peak RSS is a per-process number), in interleaved rounds, on one runtime as in the
window: a first job loads the model and works on the picture, then two jobs are timed: another
seed (the window's "try again") and another mask (moved 16 px: the mask, crop and encoding run
again). Peak RSS is the whole process's.

    python bench/photo_inpaint.py [--model PATH] [--steps N] [--rounds N]

Targets: time ratio <= 1.2, peak memory ratio <= 1.3 (4000x3000 over 512x512).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"512x512": (512, 512), "4000x3000": (4000, 3000)}


def one_case(size: tuple[int, int], model: str, steps: int) -> dict:
    """Runs in a child process: load, one warm-up job, one timed job; returns the numbers."""
    import resource
    import time

    import numpy as np
    from PIL import Image

    from studio.runtime.one_call import run_workflow
    from studio.runtime.worker import Runtime

    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(0).normal(0, 5, (height, width, 3))
    rgb = np.stack([(x / 9) % 256, (y / 7) % 256, ((x + y) / 13) % 256], -1) + noise
    picture = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    del x, y, noise, rgb
    mask = Image.new("L", size, 0)
    mask.paste(255, (width // 2 - 32, height // 2 - 32, width // 2 + 32, height // 2 + 32))
    out = tempfile.mkdtemp(prefix="photo-inpaint-")
    values = {
        "model.path": model,
        "positive.text": "a red circle",
        "sample.steps": steps,
        "sample.seed": 1,
        "crop.enabled": True,
        "composite.output": "changed area",
        "save.folder": out,
    }
    # One runtime for the case, as in the window: its second job reuses what did not change.
    runtime = Runtime(device="cpu")
    run_workflow("inpaint", values, inputs={"image": picture, "mask": mask}, runtime=runtime,
                 save=True)
    values["sample.seed"] = 2  # another seed: sampling, decoding, compositing, saving run
    started = time.perf_counter()
    result = run_workflow("inpaint", values, inputs={"image": picture, "mask": mask},
                          runtime=runtime, save=True)
    seconds = time.perf_counter() - started
    # Another mask (moved 16 px): the mask chain, the crop and the encoding run again too.
    moved = Image.new("L", size, 0)
    moved.paste(255, (width // 2 - 16, height // 2 - 16, width // 2 + 48, height // 2 + 48))
    values["sample.seed"] = 3
    started = time.perf_counter()
    run_workflow("inpaint", values, inputs={"image": picture, "mask": moved}, runtime=runtime,
                 save=True)
    new_mask_seconds = time.perf_counter() - started
    runtime.shutdown()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "new_mask_seconds": new_mask_seconds,
        "peak_mb": peak_kb / 1024,
        "result": list(result.images[0].size),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="checkpoint (default: the bundled model)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.model:
        from studio.paths import DEMO_CHECKPOINT

        args.model = str(DEMO_CHECKPOINT)
    if args.case:
        print(json.dumps(one_case(SIZES[args.case], args.model, args.steps)))
        return 0
    numbers: dict[str, list[dict]] = {name: [] for name in SIZES}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for round_ in range(args.rounds):
        for name in SIZES if round_ % 2 == 0 else reversed(SIZES):
            command = [sys.executable, __file__, "--case", name, "--model", args.model,
                       "--steps", str(args.steps)]
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            numbers[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"model {Path(args.model).name}, {args.steps} steps, 64x64 mask, {args.rounds} rounds")
    print(f"{'picture':<12}{'new seed s':>12}{'new mask s':>12}{'peak RSS MB':>13}{'result':>10}")
    medians = {}
    for name, runs in numbers.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        moved = statistics.median(r["new_mask_seconds"] for r in runs)
        peak = statistics.median(r["peak_mb"] for r in runs)
        medians[name] = (seconds, moved, peak)
        size = "x".join(map(str, runs[0]["result"]))
        print(f"{name:<12}{seconds:>12.3f}{moved:>12.3f}{peak:>13.0f}{size:>10}")
    small, big = medians["512x512"], medians["4000x3000"]
    print("(medians of the rounds)")
    print(f"time ratio, new seed:  {big[0] / small[0]:.2f}  (target <= 1.2)")
    print(f"time ratio, new mask:  {big[1] / small[1]:.2f}")
    print(f"peak memory ratio:     {big[2] / small[2]:.2f}  (target <= 1.3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
