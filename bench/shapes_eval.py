"""How well the bundled default model draws what it is asked: `python bench/shapes_eval.py`.

Generates a fixed set of prompts (every held-out colour/shape pair included) over several
seeds through the default workflows (the path the window and CLI take), reads each image back with the deterministic analyser, and prints
accuracy per attribute. Then inpainting (does the masked region follow the new prompt? PSNR
outside the mask) and the x4 upscaler (PSNR against bicubic on held-out scenes).
Targets: colours >= 90 %, shape kind and position >= 80 %, inpainting outside-mask PSNR
>= 40 dB, super-resolution >= 2 dB above bicubic.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.demo.analyse import analyse  # noqa: E402
from studio.demo.scenes import (  # noqa: E402
    COLORS,
    HELD_OUT_PAIRS,
    SHAPES,
    caption,
    draw,
    eval_scenes,
    shape_box,
)
from studio.paths import DEMO_CHECKPOINT, DEMO_UPSCALER  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def percent(hits: list[bool]) -> str:
    return f"{100 * sum(hits) / max(1, len(hits)):5.1f} %  ({sum(hits)}/{len(hits)})"


def text_to_image(runtime, args) -> None:
    from studio.runtime.one_call import run_workflow

    scores: dict[str, list[bool]] = {k: [] for k in ("background", "color", "shape", "position")}
    held: dict[str, list[bool]] = {"color": [], "shape": []}
    started = time.perf_counter()
    for scene in eval_scenes(count=args.prompts):
        prompt = caption(scene, complete=True)
        values = {
            "model.path": str(args.model), "positive.text": prompt, "sample.steps": args.steps,
            "sample.cfg_scale": args.cfg, "sample.seed": 1000, "sample.sampler": args.sampler,
            "latent.width": 64, "latent.height": 64, "latent.batch_size": args.seeds,
        }  # fmt: skip
        for image in run_workflow("txt2img", values, runtime=runtime).images:
            found = analyse(image)
            scores["background"].append(
                (found.background, found.background2) == (scene.background, scene.background2)
            )
            scores["color"].append(found.color == scene.color)
            scores["shape"].append(found.shape == scene.shape)
            scores["position"].append(found.position == scene.position)
            if (scene.color, scene.shape) in HELD_OUT_PAIRS:
                held["color"].append(found.color == scene.color)
                held["shape"].append(found.shape == scene.shape)
    seconds = time.perf_counter() - started
    print(f"\nText to image: {args.prompts} prompts x {args.seeds} seeds, {args.steps} steps")
    print(f"  background colour   {percent(scores['background'])}   target >= 90 %")
    print(f"  shape colour        {percent(scores['color'])}   target >= 90 %")
    print(f"  shape kind          {percent(scores['shape'])}   target >= 80 %")
    print(f"  position            {percent(scores['position'])}   target >= 80 %")
    print(f"  held-out pairs: colour {percent(held['color'])}, kind {percent(held['shape'])}")
    print(f"  ({seconds / len(scores['color']):.2f} s per image)")


def inpainting(runtime, args) -> None:
    from studio.runtime.one_call import run_workflow

    rng = random.Random(99)
    follows, outside = [], []
    for scene in eval_scenes(seed=77, count=args.inpaint):
        scene = replace(scene, background2="", size="large")
        original = draw(scene)
        # The new shape: another colour (not the background's) and another kind, same place.
        color = rng.choice([c for c in COLORS if c not in (scene.color, scene.background)])
        shape = rng.choice([s for s in SHAPES if s != scene.shape])
        wanted = replace(scene, color=color, shape=shape)
        mask = Image.new("L", original.size, 0)
        cx, cy, r = shape_box(scene, original.width)
        r += 4  # cover the old shape's soft edge
        ImageDraw.Draw(mask).ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        values = {
            "model.path": str(args.model), "positive.text": caption(wanted, complete=True),
            "sample.steps": args.steps, "sample.cfg_scale": args.cfg, "sample.seed": 5,
            "sample.denoise": 1.0, "feather.pixels": 2, "sample.sampler": args.sampler,
        }  # fmt: skip
        inputs = {"image": original, "mask": mask}
        result = run_workflow("inpaint", values, inputs=inputs, runtime=runtime).images[0]
        found = analyse(result)
        follows.append(found.color == color)
        keep = np.asarray(mask) == 0
        outside.append(psnr(np.asarray(result)[keep], np.asarray(original)[keep]))
    print(f"\nInpainting: {args.inpaint} scenes, the shape repainted with a new colour and kind")
    print(f"  masked region follows the new prompt (colour)  {percent(follows)}")
    finite = [p for p in outside if np.isfinite(p)]
    worst = f"{min(finite):.1f} dB" if finite else "identical"
    print(
        f"  PSNR outside the mask: worst {worst}, "
        f"{sum(not np.isfinite(p) for p in outside)}/{len(outside)} identical   target >= 40 dB"
    )


def super_resolution(runtime, args) -> None:
    from studio.demo.train import upscaler_pair
    from studio.runtime.one_call import run_workflow

    values = {"upscaler.path": str(args.upscaler)}
    rng = random.Random(424242)  # not a seed the training used
    ours, bicubic = [], []
    for _ in range(args.sr):
        low, high = upscaler_pair(rng)
        target = np.asarray(high)
        made = run_workflow("upscale", values, inputs={"image": low}, runtime=runtime).images[0]
        ours.append(psnr(np.asarray(made), target))
        bicubic.append(psnr(np.asarray(low.resize(high.size, Image.Resampling.BICUBIC)), target))
    gain = np.mean(ours) - np.mean(bicubic)
    print(f"\nSuper-resolution x4: {args.sr} held-out scenes, 64 -> 256")
    print(f"  PSNR: model {np.mean(ours):.2f} dB, bicubic {np.mean(bicubic):.2f} dB")
    print(f"  gain {gain:+.2f} dB   target >= +2 dB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEMO_CHECKPOINT)
    parser.add_argument("--upscaler", type=Path, default=DEMO_UPSCALER)
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, help="default: the model's recommendation, else 7")
    parser.add_argument("--sampler", default="Euler a")
    parser.add_argument("--inpaint", type=int, default=20)
    parser.add_argument("--sr", type=int, default=20)
    parser.add_argument("--skip", default="", help="comma list of: txt2img,inpaint,sr")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    from studio.engine.recommended import recommended_cfg
    from studio.runtime.worker import Runtime

    if args.cfg is None:
        args.cfg = recommended_cfg(args.model)
    runtime = Runtime(device="cpu")
    print(f"Model: {args.model} (CFG {args.cfg:g}, {args.sampler})")
    try:
        if "txt2img" not in skip:
            text_to_image(runtime, args)
        if "inpaint" not in skip:
            inpainting(runtime, args)
        if "sr" not in skip:
            super_resolution(runtime, args)
    finally:
        runtime.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
