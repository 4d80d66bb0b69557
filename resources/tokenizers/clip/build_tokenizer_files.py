"""Rebuild vocab.json and merges.txt (Hugging Face CLIPTokenizer files) from the CLIP BPE file.

Run from this folder: python build_tokenizer_files.py
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

HERE = Path(__file__).parent
MERGE_COUNT = 49152 - 256 - 2


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins CLIP's byte-level BPE uses for raw bytes, in byte order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    extra = 0
    table: dict[int, str] = {}
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    # CLIP orders the printable bytes first, then the remapped ones.
    return [table[b] for b in printable] + [table[b] for b in range(256) if b not in printable]


def main() -> None:
    lines = (
        gzip.open(HERE / "bpe_simple_vocab_16e6.txt.gz", "rt", encoding="utf-8").read().split("\n")
    )
    merges = [tuple(line.split()) for line in lines[1 : MERGE_COUNT + 1]]
    symbols = byte_symbols()
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (HERE / "vocab.json").write_text(
        json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False), encoding="utf-8"
    )
    (HERE / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
