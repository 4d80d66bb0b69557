"""A full-size checkpoint: Studio's graph path vs plain diffusers on the same file.

Each measurement runs in its own process (peak memory is per process), alternating the two
sides over interleaved rounds, and prints the ratios of the medians:

- peak RSS of load + jobs (target <= 0.75),
- time per denoising step, between the first and the last step of a job (target <= 1.00 at
  equal threads: both use torch's thread count, Studio every core),
- load time,
- and, in the window (offscreen, the real MainWindow and its worker): the background load that
  starts once the window is shown (with the GUI's p99 timer gap meanwhile), then the first job
  vs a warm one (target <= 1.3).

    python ../shared/tools/make_sd15_ckpt.py --out /tmp/sd15.safetensors    # no download
    python bench/full_size.py --model /tmp/sd15.safetensors

Never in CI: the checkpoint is 2 GB and a round takes minutes on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT, NEGATIVE, SEED, CFG = "a red circle on a blue background", "blurry", 1234, 7.0


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB


def _step_seconds(marks: list[float]) -> float:
    return (marks[-1] - marks[0]) / (len(marks) - 1)


def run_plain(args) -> dict:
    """diffusers' own single-file loading and pipeline call (the bundled config, offline)."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from studio.engine.configs import bundled_config, load_tokenizers

    config = args.config or bundled_config("sd1")
    started = time.perf_counter()
    pipe = StableDiffusionPipeline.from_single_file(
        str(args.model),
        config=str(config),
        local_files_only=True,
        torch_dtype=torch.float32,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **load_tokenizers(config),
    )
    pipe.set_progress_bar_config(disable=True)
    load = time.perf_counter() - started
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    steps = []
    for job in range(args.jobs):
        marks: list[float] = []

        def on_step(p, i, t, tensors, marks=marks):
            marks.append(time.perf_counter())
            return tensors

        pipe(
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            num_inference_steps=args.steps,
            guidance_scale=CFG,
            width=args.size,
            height=args.size,
            generator=torch.Generator("cpu").manual_seed(SEED + job),
            callback_on_step_end=on_step,
        )
        steps.append(_step_seconds(marks))
    return {
        "load": load,
        "step": statistics.median(steps),
        "rss": _peak_rss(),
        "threads": torch.get_num_threads(),
    }


def run_studio(args) -> dict:
    """The default text-to-image workflow through the runtime, as `studio generate` runs it."""
    from studio.runtime.events import NodeFinished, Progress
    from studio.runtime.one_call import run_workflow
    from studio.runtime.worker import Runtime

    runtime = Runtime(device="cpu")
    values = {
        "model.path": str(args.model),
        "model.config": str(args.config or ""),
        "positive.text": PROMPT,
        "negative.text": NEGATIVE,
        "sample.steps": args.steps,
        "sample.sampler": "Euler",
        "sample.cfg_scale": CFG,
        "latent.width": args.size,
        "latent.height": args.size,
    }
    steps, load = [], 0.0
    try:
        for job in range(args.jobs):
            marks: list[float] = []

            def on_event(event, marks=marks):
                if isinstance(event, Progress):
                    marks.append(time.perf_counter())

            result = run_workflow(
                "txt2img", {**values, "sample.seed": SEED + job}, runtime=runtime, on_event=on_event
            )
            if job == 0:
                load = sum(
                    e.seconds
                    for e in result.events
                    if isinstance(e, NodeFinished) and e.node_id == "model"
                )
            steps.append(_step_seconds(marks))
    finally:
        runtime.shutdown()
    import torch

    return {
        "load": load,
        "step": statistics.median(steps),
        "rss": _peak_rss(),
        "threads": torch.get_num_threads(),
    }


def run_window(args) -> dict:
    """The window's first job (from the moment it is shown) and a warm one."""
    import tempfile

    from bench.ui_latency import measure_gaps

    ui_args = argparse.Namespace(
        model=args.model, config=args.config, size=args.size, steps=args.steps, rounds=1,
        device="cpu", threads=None, warmup=True,
    )  # fmt: skip
    rows = measure_gaps(ui_args, Path(tempfile.mkdtemp(prefix="studio-full-size-")))
    (_, load_gaps, load), (_, _, first), (_, _, warm) = rows
    p99 = sorted(load_gaps)[int(0.99 * (len(load_gaps) - 1))] if load_gaps else 0.0
    return {"load": load, "load_p99_ms": p99, "first": first, "warm": warm, "rss": _peak_rss()}


SIDES = {"plain": run_plain, "studio": run_studio, "window": run_window}


def _child(side: str, args) -> dict:
    command = [
        sys.executable, __file__, "--model", str(args.model), "--size", str(args.size),
        "--steps", str(args.steps), "--jobs", str(args.jobs), "--side", side,
    ]  # fmt: skip
    if args.config:
        command += ["--config", str(args.config)]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    line = next((s for s in out.stdout.splitlines() if s.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{side} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2, help="jobs per process (new seeds)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-window", action="store_true")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print("RESULT " + json.dumps(SIDES[args.side](args)), flush=True)
        return

    sides = ["plain", "studio"] + ([] if args.no_window else ["window"])
    results: dict[str, list[dict]] = {side: [] for side in sides}
    for round_index in range(args.rounds):
        order = sides if round_index % 2 == 0 else list(reversed(sides))
        for side in order:
            results[side].append(_child(side, args))
            print(f"round {round_index + 1} {side}: {results[side][-1]}", file=sys.stderr)

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    gb = 1e9
    print(f"model: {args.model.name}, CPU fp32, {args.size}x{args.size}, {args.steps} steps, Euler, "
          f"CFG {CFG}, {args.rounds} interleaved rounds, {args.jobs} jobs per process, "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(
        f"threads: plain {results['plain'][0]['threads']}, studio {results['studio'][0]['threads']}"
    )
    print()
    print(f"{'':<26}{'plain diffusers':>16}{'studio':>10}{'ratio':>8}   target")
    rows = [
        ("peak RSS (GB)", "rss", 1 / gb, "<= 0.75"),
        ("per step (s)", "step", 1.0, "<= 1.00"),
        ("load (s)", "load", 1.0, ""),
    ]
    for label, key, scale, target in rows:
        plain, studio = med("plain", key), med("studio", key)
        print(
            f"{label:<26}{plain * scale:>16.2f}{studio * scale:>10.2f}{studio / plain:>8.2f}   {target}"
        )
    if "window" in results:
        first, warm = med("window", "first"), med("window", "warm")
        print()
        print(f"window: background load after shown {med('window', 'load'):.1f} s (GUI gap p99 "
              f"{med('window', 'load_p99_ms'):.0f} ms); then first job {first:.1f} s, warm job "
              f"{warm:.1f} s, ratio {first / warm:.2f}   target <= 1.3; "
              f"peak RSS {med('window', 'rss') / gb:.2f} GB")  # fmt: skip


if __name__ == "__main__":
    main()
