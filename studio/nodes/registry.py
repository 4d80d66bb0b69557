"""Where node types are registered: type name -> spec + run function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.graph.spec import NodeSpec
from studio.nodes.context import RunContext

# run(ctx, inputs by port name, params by name) -> outputs by port name
RunFunction = Callable[[RunContext, dict[str, Any], dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class NodeType:
    spec: NodeSpec
    run: RunFunction


NODE_TYPES: dict[str, NodeType] = {}


def node(spec: NodeSpec) -> Callable[[RunFunction], RunFunction]:
    """Decorator: register `spec` with the decorated run function."""

    def register(run: RunFunction) -> RunFunction:
        if spec.type in NODE_TYPES:
            raise ValueError(f"node type {spec.type!r} is registered twice")
        NODE_TYPES[spec.type] = NodeType(spec, run)
        return run

    return register


def specs() -> dict[str, NodeSpec]:
    """Every registered node spec by type name (what graph validation needs)."""
    _load_library()
    return {name: t.spec for name, t in NODE_TYPES.items()}


def node_types() -> dict[str, NodeType]:
    _load_library()
    return NODE_TYPES


def _load_library() -> None:
    # Importing the library modules runs their @node decorators.
    from studio.nodes import library  # noqa: F401
