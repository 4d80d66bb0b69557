"""A1111 prompt syntax: weights, brackets, escapes, BREAK and LoRA tags (no torch here)."""

from __future__ import annotations

import pytest

from studio.formats.prompt_syntax import LoraTag, Segment, extract_loras, parse_prompt


def segments(text):
    return [(s.text, round(s.weight, 4)) for s in parse_prompt(text).segments]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a red circle", [("a red circle", 1.0)]),
        ("(cat:1.0)", [("cat", 1.0)]),
        ("(cat:1.5), dog", [("cat", 1.5), (", dog", 1.0)]),
        ("((a)) [b] c", [("a", 1.21), ("b", 0.9091), (" c", 1.0)]),
        ("(a (b:2) c)", [("a ", 1.1), ("b", 2.2), (" c", 1.1)]),
        ("\\(not weighted\\) x", [("(not weighted) x", 1.0)]),
        ("(a:b)", [("a:b", 1.1)]),  # no number: a plain bracket with a colon in it
        ("open (red dog", [("open ", 1.0), ("red dog", 1.1)]),
        ("x) y]", [("x) y]", 1.0)]),  # never opened: literal
        ("time: 12", [("time: 12", 1.0)]),
        ("a BREAK b", [("a ", 1.0), (None, 1.0), (" b", 1.0)]),
        ("BREAKFAST", [("BREAKFAST", 1.0)]),
    ],
)
def test_weights(text, expected):
    assert segments(text) == expected


def test_plain_text_only_without_syntax():
    assert parse_prompt("a red circle").plain_text == "a red circle"
    assert parse_prompt("(cat:1.0)").plain_text == "cat"
    assert parse_prompt("(cat:1.2)").plain_text is None
    assert parse_prompt("a BREAK b").plain_text is None


def test_lora_tags_leave_the_text():
    text, tags = extract_loras("a cat <lora:detail_tweaker:0.8> <lora:style:0.5:0.2><lora:x>")
    assert text.split() == ["a", "cat"]
    assert tags == (
        LoraTag("detail_tweaker", 0.8),
        LoraTag("style", 0.5, 0.2),
        LoraTag("x", 1.0),
    )
    assert tags[1].text == 0.2 and tags[0].text == 0.8
    parsed = parse_prompt("(cat:1.2) <lora:a:0.3>")
    assert parsed.segments == (Segment("cat", 1.2),) and parsed.loras == (LoraTag("a", 0.3),)
