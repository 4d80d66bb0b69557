"""The node library: each node type is a declarative spec plus a run function calling the engine.

Importing this package registers every node type; it does not import torch (run functions
import the engine when they first run).
"""

from __future__ import annotations

from studio.nodes.registry import NODE_TYPES, NodeType, node, specs

__all__ = ["NODE_TYPES", "NodeType", "node", "specs"]
