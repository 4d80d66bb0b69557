"""Weighted, chunked prompt encoding: A1111's `(word:1.3)`, BREAK, embeddings, any length.

CLIP reads 77 tokens (75 words' worth plus start and end). Longer prompts are cut into chunks
of 75, each encoded on its own between start and end tokens, and the chunks' hidden states are
concatenated along the sequence, as A1111 and ComfyUI do; the UNet's cross-attention takes any
length. A token's weight scales its hidden state, then the chunk is rescaled so its mean is
what it was (A1111's way, which keeps the overall magnitude the UNet expects).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from studio.formats.prompt_syntax import ParsedPrompt

CHUNK = 75  # words' tokens per chunk; with start and end tokens, CLIP's 77
# A full chunk is cut after its last comma when that comma is at most this many tokens from
# the end, so a phrase is not split across two chunks (A1111's default, 20).
COMMA_BACKTRACK = 20
# Embedding vectors go in at positions holding this id (then replaced); any id but start/end.
_PLACEHOLDER = 0


@dataclass
class _Token:
    id: int
    weight: float
    vectors: Mapping[int, torch.Tensor] | None = None  # by encoder width, for embeddings


def token_count(tokenizer, text: str) -> int:
    return len(_ids(tokenizer, text))


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]


def _embedding_pattern(names) -> re.Pattern[str] | None:
    if not names:
        return None
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])({alternatives})(?![\w-])")


def mentioned_embeddings(text: str, names) -> set[str]:
    """Which of `names` the prompt uses as a word."""
    pattern = _embedding_pattern(names)
    return set(pattern.findall(text)) if pattern else set()


def _chunks(
    tokenizer, parsed: ParsedPrompt, embeddings: Mapping[str, Mapping[int, torch.Tensor]]
) -> list[list[_Token]]:
    pattern = _embedding_pattern(embeddings)
    chunks: list[list[_Token]] = [[]]
    comma = _ids(tokenizer, ",")[-1]
    last_comma = -1  # index in the current chunk of its last comma

    def room_for(count: int) -> None:
        nonlocal last_comma
        chunk = chunks[-1]
        if len(chunk) + count <= CHUNK or not chunk:
            return
        if count == 1 and len(chunk) == CHUNK and last_comma >= CHUNK - COMMA_BACKTRACK:
            # The phrase after the last comma moves to the next chunk whole.
            chunks[-1], carried = chunk[: last_comma + 1], chunk[last_comma + 1 :]
            chunks.append(carried)
        else:
            chunks.append([])
        last_comma = -1

    def add(token: _Token) -> None:
        nonlocal last_comma
        if token.id == comma and token.vectors is None:
            last_comma = len(chunks[-1])
        chunks[-1].append(token)

    for segment in parsed.segments:
        if segment.text is None:  # BREAK
            chunks.append([])
            last_comma = -1
            continue
        parts = pattern.split(segment.text) if pattern else [segment.text]
        for index, part in enumerate(parts):
            if index % 2 == 1:  # an embedding's name: its vectors, kept in one chunk
                vectors = embeddings[part]
                count = next(iter(vectors.values())).shape[0]
                room_for(count)
                for row in range(count):
                    rows = {width: v[row] for width, v in vectors.items()}
                    add(_Token(_PLACEHOLDER, segment.weight, rows))
                continue
            for token_id in _ids(tokenizer, part):
                room_for(1)
                add(_Token(token_id, segment.weight))
    return chunks


def _run_encoder(encoder, tokens: list[_Token], tokenizer, device):
    """The encoder's output for one chunk between start and end tokens, padded to 77."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = [tokenizer.bos_token_id, *(t.id for t in tokens), tokenizer.eos_token_id]
    ids += [pad] * (CHUNK + 2 - len(ids))
    width = encoder.config.hidden_size
    replace = {i + 1: t.vectors[width] for i, t in enumerate(tokens) if t.vectors}
    hook = None
    if replace:
        # Embedding vectors replace the placeholder tokens' rows for this call only: the
        # shared model's vocabulary is never changed.
        def put_vectors(module, args, output):
            output = output.clone()
            for position, vector in replace.items():
                output[:, position] = vector.to(output.device, output.dtype)
            return output

        hook = encoder.get_input_embeddings().register_forward_hook(put_vectors)
    try:
        return encoder(torch.tensor([ids], device=device), output_hidden_states=True)
    finally:
        if hook is not None:
            hook.remove()


def _hidden(out, encoder, layer: int, final_norm: bool) -> torch.Tensor:
    """Hidden states (1, 77, width) from `layer` (negative index)."""
    if layer == -1 and final_norm:
        return out[0]
    hidden = out.hidden_states[layer]
    if final_norm:
        # transformers 5 keeps the final norm on the model itself, 4.x on its text_model.
        hidden = getattr(encoder, "text_model", encoder).final_layer_norm(hidden)
    return hidden


def _weigh(hidden: torch.Tensor, tokens: list[_Token]) -> torch.Tensor:
    weights = [1.0, *(t.weight for t in tokens)]
    weights += [1.0] * (hidden.shape[1] - len(weights))
    if all(w == 1.0 for w in weights):
        return hidden
    w = torch.tensor(weights, dtype=torch.float32, device=hidden.device).view(1, -1, 1)
    original = hidden.float()
    weighted = original * w
    # Keep the chunk's mean where it was, so emphasis is relative, not a change of scale
    # (A1111's way). Real encoders' hidden states have a clearly non-zero mean; where the mean
    # is near zero (random test weights) the ratio means nothing and is left out.
    before, after = original.mean(), weighted.mean()
    ratio = before / after if after.abs() > 1e-3 * original.abs().mean() else None
    if ratio is not None and torch.isfinite(ratio) and 0.5 < ratio < 2:
        weighted = weighted * ratio
    return weighted.to(hidden.dtype)


def encode_chunked(
    pipe,
    family: str,
    parsed: ParsedPrompt,
    device,
    clip_skip: int = 1,
    embeddings: Mapping[str, Mapping[int, torch.Tensor]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Embeds (1, 77 * chunks, width) and SDXL's pooled embedding, for any prompt."""
    tokenizer = pipe.tokenizer if pipe.tokenizer is not None else pipe.tokenizer_2
    chunks = _chunks(tokenizer, parsed, embeddings or {})
    skip = max(1, clip_skip)
    with torch.no_grad():
        if family != "sdxl":
            encoder = pipe.text_encoder
            hidden = [
                _weigh(
                    _hidden(_run_encoder(encoder, c, tokenizer, device), encoder, -skip, True), c
                )
                for c in chunks
            ]
            return torch.cat(hidden, dim=1).to(encoder.dtype), None
        # SDXL reads the penultimate layer of both encoders (no final norm), side by side,
        # and the pooled (projected) output of the second encoder for the first chunk.
        pairs = [(pipe.text_encoder, pipe.tokenizer), (pipe.text_encoder_2, pipe.tokenizer_2)]
        pooled = None
        per_chunk = []
        for chunk in chunks:
            parts = []
            for encoder, own_tokenizer in pairs:
                if encoder is None:
                    continue
                out = _run_encoder(encoder, chunk, own_tokenizer, device)
                hidden = _hidden(out, encoder, -1 - skip, False)
                parts.append(_weigh(hidden, chunk).to(pipe.text_encoder_2.dtype))
                if pooled is None and encoder is pipe.text_encoder_2:
                    pooled = out[0]
            per_chunk.append(torch.cat(parts, dim=-1))
        return torch.cat(per_chunk, dim=1), pooled


def pad_to_same_length(a: torch.Tensor, b: torch.Tensor, empty: torch.Tensor):
    """Make two chunked embeds equally long by appending the empty prompt's chunk (for CFG)."""
    while a.shape[1] < b.shape[1]:
        a = torch.cat([a, empty.to(a.dtype)], dim=1)
    while b.shape[1] < a.shape[1]:
        b = torch.cat([b, empty.to(b.dtype)], dim=1)
    return a, b
