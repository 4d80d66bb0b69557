"""Cache keys: a node's output is reusable while its type, parameters and inputs are unchanged."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from studio.errors import WorkflowError
from studio.graph.document import Graph
from studio.graph.spec import NodeSpec
from studio.graph.validate import effective_params, node_name

# Part of every key, so that changing what a key covers can invalidate keys kept elsewhere.
KEY_VERSION = 1


def cache_key(node_type: str, params: Mapping[str, Any], input_keys: Mapping[str, str]) -> str:
    """A sha256 hex digest of the node type, its parameters and its inputs' keys by port name."""
    payload = {"v": KEY_VERSION, "type": node_type, "params": params, "inputs": input_keys}
    # sort_keys makes dict order irrelevant; json writes floats by repr and tuples as lists.
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def graph_keys(graph: Graph, specs: Mapping[str, NodeSpec], order: Iterable[str]) -> dict[str, str]:
    """Every node's cache key, by node id; `order` lists each node after the nodes feeding it.

    Ids, titles and positions are left out, so moving or renaming a node reruns nothing.
    """
    keys: dict[str, str] = {}
    for node_id in order:
        node = graph.nodes[node_id]
        spec = specs.get(node.type)
        if spec is None:
            raise WorkflowError(f'Node {node_name(node)} has an unknown type "{node.type}".')
        input_keys = {}
        for port, link in graph.inputs_of(node_id).items():
            if link.src not in keys:
                raise WorkflowError(
                    f'Node {node_name(node, spec)}: input "{port}" comes from node '
                    f'"{link.src}", which has not run before it.'
                )
            input_keys[port] = f"{keys[link.src]}:{link.src_port}"
        keys[node_id] = cache_key(node.type, effective_params(node, spec), input_keys)
    return keys
