"""Procedurally drawn scenes and their captions: the world the bundled default model knows.

A scene is one shape (kind, colour, size, position) on a solid or two-tone background. Scenes
are drawn with PIL and described by a small grammar that reads like a prompt
("a small red circle in the top left on a blue background"). Nothing is downloaded: the
training data is drawn on the fly, and the same code lets the evaluation read prompts back.
No torch here.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace

from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 145, 30),
    "yellow": (245, 225, 50),
    "green": (40, 170, 70),
    "cyan": (60, 210, 225),
    "blue": (40, 70, 215),
    "purple": (140, 60, 190),
    "pink": (245, 140, 195),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond")
# Radius / image side. A small shape still spans 4 latent cells, so its corners survive the VAE.
SIZES: dict[str, float] = {"small": 0.13, "medium": 0.17, "large": 0.21}
# Grid cells, named as a prompt would; value = (column, row) in 0..2.
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top": (1, 0),
    "top right": (2, 0),
    "left": (0, 1),
    "center": (1, 1),
    "right": (2, 1),
    "bottom left": (0, 2),
    "bottom": (1, 2),
    "bottom right": (2, 2),
}
CELL_CENTERS = (0.28, 0.5, 0.72)  # fraction of the side; keeps large shapes inside the frame

# Colour/shape pairs never shown in training, so the evaluation can test new combinations.
HELD_OUT_PAIRS = frozenset(
    {("red", "triangle"), ("green", "circle"), ("blue", "diamond"), ("yellow", "square")}
)


@dataclass(frozen=True)
class Scene:
    shape: str
    color: str
    background: str
    background2: str = ""  # set: the lower half has this colour (a two-tone background)
    size: str = "medium"
    position: str = "center"

    @property
    def backgrounds(self) -> tuple[str, ...]:
        return (self.background, self.background2) if self.background2 else (self.background,)


def sample_scene(rng: random.Random, *, allow_held_out: bool = False) -> Scene:
    """A random scene; the shape's colour always differs from the background's."""
    while True:
        shape, color = rng.choice(SHAPES), rng.choice(list(COLORS))
        if allow_held_out or (color, shape) not in HELD_OUT_PAIRS:
            break
    others = [c for c in COLORS if c != color]
    background = rng.choice(others)
    background2 = ""
    if rng.random() < 0.2:
        background2 = rng.choice([c for c in others if c != background])
    return Scene(
        shape=shape,
        color=color,
        background=background,
        background2=background2,
        size=rng.choice(list(SIZES)),
        position=rng.choice(list(POSITIONS)),
    )


def shape_box(scene: Scene, side: int) -> tuple[float, float, float]:
    """Centre x, centre y and radius of the shape, in pixels."""
    column, row = POSITIONS[scene.position]
    return CELL_CENTERS[column] * side, CELL_CENTERS[row] * side, SIZES[scene.size] * side


def draw(scene: Scene, side: int = 64, *, supersample: int = 4) -> Image.Image:
    """The scene as an RGB image, anti-aliased by drawing large and scaling down."""
    big = side * supersample
    image = Image.new("RGB", (big, big), COLORS[scene.background])
    pen = ImageDraw.Draw(image)
    if scene.background2:
        pen.rectangle((0, big // 2, big, big), fill=COLORS[scene.background2])
    cx, cy, r = shape_box(scene, big)
    fill = COLORS[scene.color]
    if scene.shape == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif scene.shape == "square":
        half = r * 0.9  # a square of equal area reads as bigger than a circle; keep them similar
        pen.rectangle((cx - half, cy - half, cx + half, cy + half), fill=fill)
    elif scene.shape == "triangle":
        # Upright, centred on its bounding box.
        pen.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill)
    elif scene.shape == "diamond":
        pen.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    else:
        raise ValueError(f"unknown shape {scene.shape!r}")
    return image.resize((side, side), Image.Resampling.LANCZOS) if supersample > 1 else image


# -- captions ---------------------------------------------------------------------------------


def _background_phrase(scene: Scene) -> str:
    if scene.background2:
        return f"{scene.background} and {scene.background2}"
    return scene.background


def _where(scene: Scene, rng: random.Random) -> str:
    if scene.position == "center":
        return rng.choice(["in the center", "in the middle", "at the center"])
    if " " in scene.position:
        return rng.choice([f"in the {scene.position}", f"at the {scene.position}"])
    return (
        f"at the {scene.position}"
        if scene.position in ("top", "bottom")
        else f"on the {scene.position}"
    )


def caption(scene: Scene, rng: random.Random | None = None, *, complete: bool = False) -> str:
    """A prompt-like description; `complete` always names size and position (for evaluation)."""
    rng = rng or random.Random(0)
    with_size = complete or rng.random() < 0.7
    with_where = complete or rng.random() < 0.8
    thing = f"{scene.size + ' ' if with_size else ''}{scene.color} {scene.shape}"
    where = f" {_where(scene, rng)}" if with_where else ""
    background = _background_phrase(scene)
    templates = (
        "{a} {thing}{where} on a {bg} background",
        "{a} {thing}{where}, {bg} background",
        "{bg} background with {a} {thing}{where}",
        "{a} {thing}{where} against a {bg} background",
    )
    template = templates[0] if complete else rng.choice(templates)
    text = template.format(a="a", thing=thing, where=where, bg=background)
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


# Every attribute a caption can name, with its values in a fixed order (for training labels).
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "color": tuple(COLORS),
    "background": tuple(COLORS),
    "background2": ("",) + tuple(COLORS),  # "": a solid background
    "size": tuple(SIZES),
    "position": tuple(POSITIONS),
}
_SAYS_WHERE = re.compile(r"\b(?:in|at|on) the \w")


def caption_labels(scene: Scene, text: str) -> dict[str, int | None]:
    """The index in ATTRIBUTES of each attribute that `text` (a caption of `scene`) names;
    None for size or position when the caption leaves them out."""
    named = {
        "size": f"{scene.size} {scene.color} {scene.shape}" in text,
        "position": _SAYS_WHERE.search(text) is not None,
    }
    return {
        name: values.index(getattr(scene, name)) if named.get(name, True) else None
        for name, values in ATTRIBUTES.items()
    }


_WORDS = re.compile(r"[a-z]+")


def parse_prompt(text: str) -> Scene | None:
    """Read a prompt of this grammar back into a scene (missing size/position: medium/center)."""
    words = _WORDS.findall(text.lower())
    joined = " ".join(words)
    shape = next((w for w in words if w in SHAPES), None)
    if shape is None:
        return None
    index = words.index(shape)
    color = next((w for w in reversed(words[:index]) if w in COLORS), None)
    size = next((w for w in words[:index] if w in SIZES), "medium")
    bg_match = re.search(r"(\w+)(?: and (\w+))? background", joined)
    if color is None or bg_match is None or bg_match.group(1) not in COLORS:
        return None
    background2 = bg_match.group(2) if bg_match.group(2) in COLORS else ""
    position = "center"
    for name in sorted(POSITIONS, key=len, reverse=True):
        if re.search(rf"\b(?:in|at|on) the {name}\b", joined):
            position = name
            break
    return Scene(shape, color, bg_match.group(1), background2, size, position)


def eval_scenes(seed: int = 1234, count: int = 40) -> list[Scene]:
    """A fixed evaluation set: every held-out colour/shape pair, then random scenes."""
    rng = random.Random(seed)
    scenes: list[Scene] = []
    for color, shape in sorted(HELD_OUT_PAIRS):
        scenes.append(replace(sample_scene(rng), color=color, shape=shape))
        if scenes[-1].color in scenes[-1].backgrounds:
            scenes[-1] = replace(
                scenes[-1], background=next(c for c in COLORS if c != color), background2=""
            )
    while len(scenes) < count:
        scenes.append(sample_scene(rng, allow_held_out=True))
    return scenes
