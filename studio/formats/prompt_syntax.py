"""The prompt syntax people bring from A1111: attention weights, BREAK and extra networks.

`(word)` multiplies the weight of its words by 1.1, `[word]` divides it by 1.1, `(word:1.3)`
sets the multiplier to 1.3; brackets nest. `\\(` and `\\)` are literal brackets. `BREAK`
starts a new 77-token chunk. `<lora:name:0.8>` (or `<lora:name:0.8:0.5>` for a separate text
encoder strength) asks for a LoRA and is taken out of the text. An opening bracket that is
never closed weighs everything after it; a closing one that was never opened is literal.

Written from the documented behaviour; no code of A1111 (AGPL) was used. Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROUND = 1.1  # the multiplier of one level of ( ), and the divisor of [ ]

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_EXTRA_NETWORK = re.compile(
    rf"<(lora|lyco):([^:<>]+?)(?::\s*({_NUMBER}))?(?::\s*({_NUMBER}))?\s*>", re.IGNORECASE
)
_TOKEN = re.compile(
    rf"\\.|\(|\[|:\s*({_NUMBER})\s*\)|\)|\]|(?<![^\s,])BREAK(?![^\s,])|[^\\()\[\]:B]+|.",
    re.DOTALL,
)


@dataclass(frozen=True)
class LoraTag:
    """A `<lora:name:unet[:text]>` tag from a prompt."""

    name: str
    unet_strength: float = 1.0
    text_strength: float | None = None  # None: the same as unet_strength

    @property
    def text(self) -> float:
        return self.unet_strength if self.text_strength is None else self.text_strength


@dataclass(frozen=True)
class Segment:
    """A run of prompt text with one weight; `text` is None for BREAK."""

    text: str | None
    weight: float = 1.0


@dataclass(frozen=True)
class ParsedPrompt:
    segments: tuple[Segment, ...]
    loras: tuple[LoraTag, ...] = ()

    @property
    def plain_text(self) -> str | None:
        """The text alone, if there is one segment of weight 1.0 and no BREAK; else None."""
        if not self.segments:
            return ""
        if len(self.segments) == 1:
            only = self.segments[0]
            if only.text is not None and only.weight == 1.0:
                return only.text
        return None


def extract_loras(text: str) -> tuple[str, tuple[LoraTag, ...]]:
    """The prompt without its `<lora:...>` tags, and the tags (bad numbers count as 1.0)."""
    tags: list[LoraTag] = []

    def take(match: re.Match[str]) -> str:
        name = match.group(2).strip()
        unet = _to_float(match.group(3), 1.0)
        text_strength = _to_float(match.group(4), None) if match.group(4) else None
        if name:
            tags.append(LoraTag(name, unet, text_strength))
        return ""

    return _EXTRA_NETWORK.sub(take, text), tuple(tags)


def _to_float(value: str | None, default):
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def parse_prompt(text: str) -> ParsedPrompt:
    """Split a prompt into weighted segments, BREAKs and LoRA tags."""
    text, loras = extract_loras(text)
    # Each piece: (text or None for BREAK, ids of the brackets it is inside).
    pieces: list[tuple[str | None, tuple[int, ...]]] = []
    multipliers: list[float] = []  # by bracket id
    stack: list[tuple[str, int]] = []  # open brackets: (kind, id)

    def add(chunk: str) -> None:
        pieces.append((chunk, tuple(i for _, i in stack)))

    def open_bracket(kind: str) -> None:
        multipliers.append(ROUND if kind == "(" else 1 / ROUND)
        stack.append((kind, len(multipliers) - 1))

    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token.startswith("\\") and len(token) == 2:
            add(token[1] if token[1] in "()[]\\:" else token)
        elif token in ("(", "["):
            open_bracket(token)
        elif match.group(1) is not None:  # ":1.3)" closes a round bracket with its own weight
            if not stack or stack[-1][0] != "(":
                add(token)
                continue
            multipliers[stack.pop()[1]] = _to_float(match.group(1), 1.0)
        elif token in (")", "]"):
            if stack and stack[-1][0] == ("(" if token == ")" else "["):
                stack.pop()
            else:
                add(token)
        elif token == "BREAK":
            pieces.append((None, ()))
        else:
            add(token)
    weighted = []
    for chunk, inside in pieces:
        weight = 1.0
        for bracket in inside:
            weight *= multipliers[bracket]
        weighted.append([chunk, weight])
    return ParsedPrompt(_merge(weighted), loras)


def _merge(pieces: list[list]) -> tuple[Segment, ...]:
    merged: list[Segment] = []
    for text, weight in pieces:
        if text is None:
            merged.append(Segment(None))
        elif merged and merged[-1].text is not None and merged[-1].weight == weight:
            merged[-1] = Segment(merged[-1].text + text, weight)
        elif text:
            merged.append(Segment(text, weight))
    # Whitespace-only segments carry no words; BREAK-adjacent spaces are dropped with them.
    kept = [s for s in merged if s.text is None or s.text.strip()]
    if len(kept) == 1 and kept[0].text is not None:
        return (Segment(kept[0].text.strip(), kept[0].weight),)
    return tuple(kept)
