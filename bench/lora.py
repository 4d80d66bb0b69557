"""LoRA on a loaded model: what switching its strength costs next to a generation, and memory.

Runs the default text-to-image workflow through the executor (the path the window and the CLI
take) with a LoRA node, changing only the LoRA's strength between jobs, and prints:

- the time of a job whose LoRA strength changed (the LoRA node, prompt encoding and sampling
  rerun; the checkpoint is not reloaded) against the same job without a LoRA;
- the switch itself (adapters on with new strengths, then off again: what a job's steps pay),
  against the generation, as a ratio;
- the first load of the LoRA file against the generation;
- memory: the growth of the process's peak resident memory (CUDA: peak allocated memory) over
  the LoRA jobs, as a fraction of the UNet's size (a second copy of the UNet would be >= 1).

    python bench/lora.py                            # a small SD1-shaped random model, CPU
    python bench/lora.py --model sd15.safetensors --lora detail.safetensors --size 512 --steps 20
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


def _peak_resident_bytes() -> int:
    """The process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--lora", type=Path, help="a LoRA for the model (default: a random one)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import torch

    from studio.engine.addons import LoraUse
    from studio.engine.checkpoint import ModelCache
    from studio.engine.device import choose_device
    from studio.engine.loras import activate_loras, adapter_name, deactivate_loras
    from studio.engine.progress import CancelToken
    from studio.graph.serialize import to_dict
    from studio.nodes.context import RunContext
    from studio.nodes.defaults import default_workflow, set_params
    from studio.nodes.model_addons import LoraChoice, add_model_addons
    from studio.runtime.executor import Executor

    choice = choose_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="studio-bench-lora-"))
    model_path, config = args.model, args.config
    if model_path is None:
        from bench.small_model import build

        model_path, config = build(work)
    models = ModelCache()
    model = models.get(model_path, choice, config=config)
    lora_path = args.lora
    if lora_path is None:
        from tests.tiny_addons import write_lora

        lora_path = write_lora(model.base, work / "random-lora.safetensors", "kohya", rank=16)
    unet_bytes = sum(p.numel() * p.element_size() for p in model.base.unet.parameters())
    base_storage = {p.data_ptr() for p in model.base.unet.parameters()}

    values = {
        "model.path": str(model_path),
        "model.config": str(config or ""),
        "positive.text": "a red circle on a blue background",
        "negative.text": "blurry",
        "sample.seed": 1234,
        "sample.steps": args.steps,
        "sample.sampler": "Euler",
        "latent.width": args.size,
        "latent.height": args.size,
    }
    plain = set_params(default_workflow("txt2img"), values)
    with_lora = add_model_addons(
        set_params(default_workflow("txt2img"), values), loras=[LoraChoice(str(lora_path))]
    )
    (lora_node,) = with_lora.find("LoRA")

    def job(graph, executor) -> float:
        ctx = RunContext(
            models=models,
            device=choice,
            cancel=CancelToken(),
            output_dir=work,
            workflow=to_dict(graph),
        )
        started = time.perf_counter()
        executor.run(graph, ctx, lambda event: None, "bench")
        return time.perf_counter() - started

    job(plain, Executor())  # warm-up
    started = time.perf_counter()
    adapter_name(model, Path(lora_path))
    first_load = time.perf_counter() - started

    cuda = choice.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_memory = torch.cuda.max_memory_allocated()
    else:
        base_memory = _peak_resident_bytes()
    executor = Executor()
    job(with_lora, executor)
    # Interleaved, so that a busy machine slows both kinds of job alike.
    plain_times, switch_jobs = [], []
    for index in range(args.rounds):
        plain_times.append(job(plain, Executor()))
        lora_node.params["strength"] = 0.5 + 0.1 * index
        lora_node.params["text_strength"] = 0.5 + 0.1 * index
        switch_jobs.append(job(with_lora, executor))
    if cuda:
        torch.cuda.synchronize()
        grown = torch.cuda.max_memory_allocated() - base_memory
    else:
        grown = _peak_resident_bytes() - base_memory

    after = {n: p for n, p in model.base.unet.named_parameters()}
    adapter_bytes = sum(p.numel() * p.element_size() for n, p in after.items() if "lora_" in n)
    shared = base_storage <= {p.data_ptr() for n, p in after.items() if "lora_" not in n}
    switches = []
    for index in range(20):
        use = LoraUse(Path(lora_path), 0.3 + 0.01 * index, 0.3 + 0.01 * index)
        started = time.perf_counter()
        activate_loras(model, [use])
        deactivate_loras(model)
        switches.append(time.perf_counter() - started)
    loads = models.loads

    generation = statistics.median(plain_times)
    switch = statistics.median(switches)
    print(f"model: {model.name} ({model.info.label}), {choice.label}; LoRA: {Path(lora_path).name}")
    print(f"{args.size}x{args.size}, {args.steps} steps, Euler, {args.rounds} rounds")
    print()
    print(f"{'':<52}{'median (s)':>12}{'ratio':>10}")
    print(f"{'job without LoRA (the generation)':<52}{generation:>12.3f}{1:>10.2f}")
    job_lora = statistics.median(switch_jobs)
    print(
        f"{'job after changing the LoRA strength':<52}{job_lora:>12.3f}{job_lora / generation:>10.2f}"
    )
    print(
        f"{'switch: adapters on at new strengths, then off':<52}{switch:>12.4f}{switch / generation:>10.4f}"
    )
    print(f"{'first load of the LoRA file':<52}{first_load:>12.3f}{first_load / generation:>10.2f}")
    print()
    what = "peak CUDA memory" if cuda else "peak resident memory"
    print(f"UNet: {unet_bytes / 2**20:.1f} MiB; {what} grew by {grown / 2**20:.1f} MiB over the")
    print(f"LoRA jobs = {grown / unet_bytes:.2f} x the UNet (a second copy would be >= 1.00)")
    print(f"UNet weights after the LoRA jobs: {'the same tensors' if shared else 'COPIED'}; ")
    print(f"LoRA adapter weights beside them: {adapter_bytes / 2**20:.2f} MiB")
    print(f"checkpoint loads: {loads} (the LoRA jobs loaded nothing again)")


if __name__ == "__main__":
    main()
