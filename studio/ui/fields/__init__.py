"""One field per parameter kind, for the prompt panel and the node editor alike.

`make_field(param)` builds the editor of a node spec's Param (range, step, choices, hints);
what differs between the two places is said with options, not with other classes:
`compact` sizes it to sit inside a node, `placeholder` is the panel's word for a prompt,
`seeds` binds a seed to the presentation model's policy (random, reuse the last) and
`models` makes a checkpoint path a selector of the known models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from studio.graph.spec import BOOL, ENUM, FLOAT, INT, PATH, SEED, TEXT, Param
from studio.ui.fields.base import FIELD_HEIGHT, Field, describe
from studio.ui.fields.kinds import (
    BoolField,
    ChoiceField,
    FloatField,
    IntField,
    LineField,
    PathField,
    TextField,
)
from studio.ui.fields.seed import SeedField

if TYPE_CHECKING:
    from studio.ui.models import ModelList

__all__ = [
    "FIELD_HEIGHT",
    "BoolField",
    "ChoiceField",
    "Field",
    "FloatField",
    "IntField",
    "LineField",
    "PathField",
    "SeedField",
    "TextField",
    "describe",
    "make_field",
]

KINDS: dict[str, type[Field]] = {
    INT: IntField,
    FLOAT: FloatField,
    ENUM: ChoiceField,
    BOOL: BoolField,
    PATH: PathField,
}


def make_field(
    param: Param,
    *,
    compact: bool = False,
    placeholder: str = "",
    seeds: Any = None,
    models: ModelList | None = None,
) -> Field:
    """The editor for a parameter's kind (a one-line text field for other kinds)."""
    if param.kind == TEXT:
        return TextField(param, compact, placeholder)
    if param.kind == SEED:
        return SeedField(param, compact, seeds)
    if models is not None and param.kind == PATH and param.hints.get("file_filter") == "checkpoint":
        from studio.ui.models import ModelField  # it builds on Field: imported when needed

        return ModelField(param, models)
    return KINDS.get(param.kind, LineField)(param, compact)
