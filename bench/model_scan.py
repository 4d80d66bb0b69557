"""Scanning a model folder of 1,000 files: first scan (headers only) and a second (cached).

Writes an A1111-style install with FILES LoRA, embedding and VAE files whose safetensors headers
have the size and key count of real ones (about 700 keys for a LoRA) but tiny tensors, then
times `studio models`' scan twice: the first reads every header, the second only stats the
files (size and mtime unchanged). Target: the second scan of 1,000 files under 1 s.

    python bench/model_scan.py [--files 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def write_folder(root: Path, count: int) -> None:
    import torch
    from safetensors.torch import save_file

    lora = {}
    for block in range(100):
        for part in ("to_q", "to_k", "to_v", "to_out_0"):
            key = f"lora_unet_down_blocks_{block}_attentions_0_transformer_blocks_0_attn2_{part}"
            lora[f"{key}.lora_down.weight"] = torch.zeros(1, 768 if part == "to_k" else 1)
            lora[f"{key}.lora_up.weight"] = torch.zeros(1, 1)
    vae = {
        "encoder.conv_in.weight": torch.zeros(2, 3, 1, 1),
        "decoder.conv_in.weight": torch.zeros(2, 4, 1, 1),
        "decoder.conv_out.weight": torch.zeros(3, 2, 1, 1),
    }
    for index in range(count):
        kind = index % 10
        if kind < 7:
            folder, state = root / "models" / "Lora" / f"set{index % 7}", lora
        elif kind < 9:
            folder, state = root / "embeddings", {"emb_params": torch.zeros(4, 768)}
        else:
            folder, state = root / "models" / "VAE", vae
        folder.mkdir(parents=True, exist_ok=True)
        save_file(state, str(folder / f"file{index:05d}.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()

    from studio.engine.model_files import scan_folders

    work = Path(tempfile.mkdtemp(prefix="studio-bench-scan-"))
    root = work / "stable-diffusion-webui"
    write_folder(root, args.files)
    cache = work / "model-scan.json"
    started = time.perf_counter()
    first = scan_folders([root], cache_file=cache)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    second = scan_folders([root], cache_file=cache)
    warm = time.perf_counter() - started
    kinds: dict[str, int] = {}
    for entry in second:
        kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
    assert [e.kind for e in first] == [e.kind for e in second]
    print(f"{len(second)} files: {', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}")
    print(f"first scan (headers):   {cold:6.2f} s")
    print(f"second scan (cached):   {warm:6.2f} s   (target < 1 s)")


if __name__ == "__main__":
    main()
