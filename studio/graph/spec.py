"""Declarative descriptions of node types: typed ports and parameters with ranges and UI hints."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

# What flows along links. Values are engine objects; the graph only knows the names.
MODEL = "MODEL"  # a loaded checkpoint (UNet, VAE, text encoders, scheduler config)
CONDITIONING = "CONDITIONING"  # encoded prompt
LATENT = "LATENT"  # latent images, or the size of empty ones, plus an optional noise mask
IMAGE = "IMAGE"  # an RGB image
MASK = "MASK"  # a single-channel mask, white = repaint
UPSCALE_MODEL = "UPSCALE_MODEL"  # a super-resolution model
REGION = "REGION"  # where a crop around a mask came from, so the result can be pasted back
PORT_TYPES = (MODEL, CONDITIONING, LATENT, IMAGE, MASK, UPSCALE_MODEL, REGION)

# Parameter kinds.
INT, FLOAT, STRING, TEXT, ENUM, SEED, PATH, BOOL = (
    "int",
    "float",
    "string",  # one line
    "text",  # multi-line (prompts)
    "enum",
    "seed",
    "path",
    "bool",
)
PARAM_KINDS = (INT, FLOAT, STRING, TEXT, ENUM, SEED, PATH, BOOL)
MAX_SEED = 2**64 - 1
# A random seed is drawn from 32 bits (what A1111 and ComfyUI users are used to seeing).
RANDOM_SEEDS = 2**32


def random_seed() -> int:
    """A fresh random seed: the one range the window, the node editor and the CLI draw from."""
    return random.randrange(RANDOM_SEEDS)


@dataclass(frozen=True)
class Port:
    name: str
    type: str
    optional: bool = False
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    label: str = ""
    # UI hints: e.g. {"file_filter": "*.safetensors", "role": "prompt", "advanced": True}.
    hints: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def check(self, value: Any) -> str | None:
        """Why `value` is not acceptable for this parameter, or None if it is."""
        kind = self.kind
        if kind in (INT, SEED):
            if isinstance(value, bool) or not isinstance(value, int):
                return f"must be a whole number, not {value!r}"
            low = 0 if kind == SEED and self.minimum is None else self.minimum
            high = MAX_SEED if kind == SEED and self.maximum is None else self.maximum
        elif kind == FLOAT:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"must be a number, not {value!r}"
            low, high = self.minimum, self.maximum
        elif kind in (STRING, TEXT, PATH):
            return None if isinstance(value, str) else f"must be text, not {value!r}"
        elif kind == BOOL:
            return None if isinstance(value, bool) else f"must be true or false, not {value!r}"
        elif kind == ENUM:
            if value not in self.choices:
                return f"must be one of {', '.join(map(str, self.choices))}, not {value!r}"
            return None
        else:
            return f"has an unknown kind {kind!r}"
        if low is not None and value < low:
            return f"must be at least {_number(low)}, not {_number(value)}"
        if high is not None and value > high:
            return f"must be at most {_number(high)}, not {_number(value)}"
        return None


def _number(value: float) -> str:
    """Whole numbers in full (a seed limit is 18446744073709551615, not 1.84467e+19)."""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    return f"{value:g}"


@dataclass(frozen=True)
class NodeSpec:
    """A node type: what it takes, what it gives, what it can be set to."""

    type: str  # stable identifier saved in workflow files, e.g. "LoadCheckpoint"
    title: str  # shown to the user, e.g. "Load checkpoint"
    category: str = ""
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    params: tuple[Param, ...] = ()
    description: str = ""
    # An output node (saves or shows a result) is what makes a graph worth running.
    output_node: bool = False

    def input(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output(self, name: str) -> Port | None:
        return next((p for p in self.outputs if p.name == name), None)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}
