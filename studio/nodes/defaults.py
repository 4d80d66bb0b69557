"""The default workflows shipped in resources/workflows/, one per mode."""

from __future__ import annotations

from typing import Any

from studio.errors import WorkflowError
from studio.graph.document import Graph
from studio.paths import RESOURCES

WORKFLOWS = RESOURCES / "workflows"
DEFAULT_WORKFLOWS = {
    "txt2img": "txt2img.json",
    "img2img": "img2img.json",
    "inpaint": "inpaint.json",
    "upscale": "upscale.json",
    "hires-fix": "hires-fix.json",
}


def default_workflow(mode: str) -> Graph:
    from studio.graph.serialize import load

    if mode not in DEFAULT_WORKFLOWS:
        raise WorkflowError(
            f"No default workflow for '{mode}': choose {', '.join(DEFAULT_WORKFLOWS)}."
        )
    return load(WORKFLOWS / DEFAULT_WORKFLOWS[mode])


def set_params(graph: Graph, values: dict[str, Any]) -> Graph:
    """Set "node.param" values (node by id), e.g. {"sample.seed": 3}; unknown nodes are an error."""
    for dotted, value in values.items():
        node_id, _, param = dotted.partition(".")
        if node_id not in graph.nodes or not param:
            raise WorkflowError(f"The workflow has no node '{node_id}' (from '{dotted}').")
        graph.set_param(node_id, param, value)
    return graph
