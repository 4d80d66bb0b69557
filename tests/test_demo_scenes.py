"""The bundled model's world: scenes, captions, and the analyser that judges generated images."""

from __future__ import annotations

import random

import numpy as np
import pytest

from studio.demo.analyse import analyse
from studio.demo.scenes import (
    ATTRIBUTES,
    HELD_OUT_PAIRS,
    POSITIONS,
    Scene,
    caption,
    caption_labels,
    draw,
    eval_scenes,
    parse_prompt,
    sample_scene,
)


def test_the_analyser_reads_every_drawn_scene_back():
    rng = random.Random(3)
    for _ in range(150):
        scene = sample_scene(rng, allow_held_out=True)
        found = analyse(draw(scene))
        assert (found.background, found.background2) == (scene.background, scene.background2)
        assert (found.color, found.shape, found.position) == (
            scene.color,
            scene.shape,
            scene.position,
        ), scene


def test_the_analyser_finds_no_shape_on_a_plain_background():
    image = draw(Scene("circle", "red", "blue", size="small"))
    plain = np.array(image)
    plain[:] = plain[0, 0]
    found = analyse(plain)
    assert found.background == "blue" and found.shape is None and found.color is None


@pytest.mark.parametrize("seed", range(5))
def test_captions_read_like_prompts_and_parse_back(seed):
    rng = random.Random(seed)
    scene = sample_scene(rng)
    text = caption(scene, rng)
    assert " a o" not in f" {text}" and " a a" not in f" {text}"  # "an orange", "an a..."
    parsed = parse_prompt(text)
    assert parsed is not None
    assert (parsed.shape, parsed.color, parsed.background, parsed.background2) == (
        scene.shape,
        scene.color,
        scene.background,
        scene.background2,
    )
    full = parse_prompt(caption(scene, complete=True))
    assert full == scene


def test_caption_labels_name_what_the_caption_says_and_only_that():
    rng = random.Random(7)
    said = {"size": 0, "position": 0}
    for _ in range(400):
        scene = sample_scene(rng)
        text = caption(scene, rng)
        labels = caption_labels(scene, text)
        for name in ("shape", "color", "background", "background2"):
            assert ATTRIBUTES[name][labels[name]] == getattr(scene, name)
        size_named = f" {scene.size} " in f" {text} "
        assert (labels["size"] is not None) == size_named, text
        where_named = any(f"the {p}" in text for p in (*POSITIONS, "middle"))
        assert (labels["position"] is not None) == where_named, text
        if labels["position"] is not None:
            assert ATTRIBUTES["position"][labels["position"]] == scene.position
        said["size"] += size_named
        said["position"] += where_named
    # Both kinds of caption occur: with and without size, with and without a position.
    assert 0 < said["size"] < 400 and 0 < said["position"] < 400


def test_held_out_pairs_never_appear_in_training_but_do_in_the_evaluation():
    rng = random.Random(0)
    seen = {(s.color, s.shape) for s in (sample_scene(rng) for _ in range(3000))}
    assert not seen & HELD_OUT_PAIRS
    assert HELD_OUT_PAIRS <= {(s.color, s.shape) for s in eval_scenes()}


def test_shape_colour_never_matches_its_background():
    rng = random.Random(1)
    for _ in range(500):
        scene = sample_scene(rng)
        assert scene.color not in scene.backgrounds
